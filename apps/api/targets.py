"""Which stream a URL names, for whom: standalone (/ds/v1/stream/<name>) or a run's stream
(/api/v1/runs/<run>/streams/<key>). Authentication and scope checks happen here, once."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings

from apps.api.exchange import StreamRequest
from apps.projects.access import Principal, authenticate_credential
from apps.runs.selectors import run_exists
from apps.streams.models import Stream
from apps.streams.services import StreamRef, stream_lookup
from streamdash.core.errors import BadRequest, NotFound, StreamNotFound

_KEY_RE = re.compile(r"[A-Za-z0-9._~:-]{1,200}")
_NAME_RE = re.compile(r"[A-Za-z0-9._~:/-]{1,500}")


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

    def not_found(self) -> None:
        """Raise the right 404: the run's, or the stream's."""
        if self.run_id is not None and not run_exists(
            project=self.principal.project, run_id=self.run_id
        ):
            raise NotFound(f"Run {self.run_id!r} not found.", run=self.run_id)
        raise StreamNotFound(f"Stream {self.key!r} not found.", stream=self.key)


def standalone_target(request: StreamRequest, name: str) -> Target:
    if not _NAME_RE.fullmatch(name) or ".." in name.split("/"):
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
