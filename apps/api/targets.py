"""Which stream a URL names, for whom: standalone (/ds/v1/stream/<name>), a run's stream
(/api/v1/runs/<run>/streams/<key>) or a run's input (/api/v1/runs/<run>/inputs/<name>, the
stream ``input:<name>``). Authentication and scope checks happen here, once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from django.conf import settings

from apps.api import protocol
from apps.api.exchange import StreamRequest
from apps.projects.access import Principal, authenticate_credential
from apps.runs.ids import is_run_id
from apps.runs.selectors import run_exists
from apps.streams import threads
from apps.streams.inputs import input_key
from apps.streams.models import Stream
from apps.streams.services import ForkSpec, StreamRef, astream_lookup, stream_lookup
from streamdash.core.errors import BadRequest, NotFound, StreamNotFound

_KEY_RE = re.compile(r"[A-Za-z0-9._~:-]{1,200}")
_NAME_RE = re.compile(r"[A-Za-z0-9._~:/-]{1,500}")
# Stream-Forked-From names a stream of the caller's project by its path: standalone as the
# conformance suite sends it (relative to the /ds base) or in full, or a run's stream.
_STANDALONE_PATH = re.compile(r"(?:/ds)?/v1/stream/(?P<name>.+)")
_RUN_STREAM_PATH = re.compile(r"/api/v1/runs/(?P<run>[^/]+)/streams/(?P<key>[^/]+)")


@dataclass
class Target:
    """A stream URL resolved for one caller. Reads and appends find the stream with one query
    scoped to the caller's project, which is also what keeps projects apart."""

    principal: Principal
    key: str
    run_id: str | None

    def require(self, action: str) -> None:
        self.principal.require(
            action, run_id=self.run_id, key=self.key if self.run_id is not None else None
        )

    def ref(self) -> StreamRef:
        return StreamRef(project_id=self.principal.project.pk, run_id=self.run_id, key=self.key)

    def stream(self) -> Stream:
        """The live stream, or 404. An expired stream is as good as gone (and removed lazily
        by the next create or the purge)."""
        stream = stream_lookup(self.ref())
        if stream is None:
            self.not_found()
        assert stream is not None
        return stream

    async def astream(self) -> Stream:
        """``stream`` for async callers (``services.astream_lookup``); the 404's run check, a
        query of the ORM, goes to the read pool."""
        stream = await astream_lookup(self.ref())
        if stream is None:
            await threads.run_in("read", self.not_found)
        assert stream is not None
        return stream

    def fork_of(self, source: str, offset: str | None, sub_offset: int) -> ForkSpec:
        """The stream a ``Stream-Forked-From`` path names, which the caller must be able to
        read."""
        path = unquote(urlsplit(source).path)
        standalone = _STANDALONE_PATH.fullmatch(path)
        run_stream = _RUN_STREAM_PATH.fullmatch(path)
        if standalone is not None and _valid_name(standalone["name"]):
            run_id, key = None, standalone["name"]
        elif run_stream is not None and _KEY_RE.fullmatch(run_stream["key"]):
            run_id, key = run_stream["run"], run_stream["key"]
        else:
            raise BadRequest(
                f"Stream-Forked-From {source!r} is not a stream path: use /v1/stream/<name> "
                "or /api/v1/runs/<run>/streams/<key>.",
                header="Stream-Forked-From",
            )
        self.principal.require("read", run_id=run_id, key=key if run_id is not None else None)
        return ForkSpec(run_id, key, offset, sub_offset)

    def names_no_run(self) -> bool:
        """True when the URL's run id cannot name a run (``is_run_id``): its 404 needs no
        query."""
        return self.run_id is not None and not is_run_id(self.run_id)

    def not_found(self) -> None:
        """Raise the right 404: the run's, or the stream's."""
        if self.run_id is not None and not run_exists(
            project=self.principal.project, run_id=self.run_id
        ):
            raise NotFound(f"Run {self.run_id!r} not found.", run=self.run_id)
        raise StreamNotFound(f"Stream {self.key!r} not found.", stream=self.key)


def _valid_name(name: str) -> bool:
    return _NAME_RE.fullmatch(name) is not None and ".." not in name.split("/")


@dataclass
class InputTarget(Target):
    """A run's input stream. Appending to it (``sending``: a POST with chunks that does not
    close it) needs only "send", which a ``write:inputs:<run>`` token grants; creating, closing
    or deleting it needs "write" as for any stream."""

    sending: bool = False

    def require(self, action: str) -> None:
        self.principal.require(
            "send" if action == "write" and self.sending else action,
            run_id=self.run_id,
            key=self.key,
        )


def standalone_target(request: StreamRequest, name: str) -> Target:
    if not _valid_name(name):
        raise BadRequest(f"Stream name {name!r} is not valid.", stream=name)
    principal = authenticate_credential(
        request.credential, allow_public=settings.STREAMDASH_PUBLIC_DS
    )
    return Target(principal, name, None)


def is_stream_key(key: str) -> bool:
    """Whether a run's stream could ever have this key (what a create accepts)."""
    return _KEY_RE.fullmatch(key) is not None


def run_target(request: StreamRequest, run_id: str, key: str) -> Target:
    if not is_stream_key(key):
        raise BadRequest(
            f"Stream key {key!r} is not valid: use 1–200 letters, digits and . _ ~ : -",
            stream=key,
        )
    return Target(authenticate_credential(request.credential), key, run_id)


def input_target(request: StreamRequest, run_id: str, name: str) -> InputTarget:
    closing = protocol.is_true(request.headers.get(protocol.CLOSED))
    sending = request.method == "POST" and not closing
    principal = authenticate_credential(request.credential)
    return InputTarget(principal, input_key(name), run_id, sending=sending)
