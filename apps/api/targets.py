"""Which stream a URL names, for whom: standalone (/ds/v1/stream/<name>) or a run's stream
(/api/v1/runs/<run>/streams/<key>). Authentication and scope checks happen here, once."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from apps.projects.access import Principal, authenticate
from apps.runs.models import Run
from apps.streams.errors import BadRequest, NotFound, StreamNotFound
from apps.streams.models import Stream
from apps.streams.services import StreamRef, stream_lookup

_KEY_RE = re.compile(r"^[A-Za-z0-9._~:-]{1,200}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9._~:/-]{1,500}$")


@dataclass
class Target:
    """A stream URL resolved for one caller. The run is loaded only when an operation needs the
    row itself (create); reads and appends find the stream with one query scoped to the
    caller's project, which is also what keeps projects apart."""

    principal: Principal
    key: str
    run_id: str | None
    _run: Run | None = field(default=None, repr=False)

    def require(self, action: str) -> None:
        self.principal.require(
            action, run_id=self.run_id, key=self.key if self.run_id is not None else None
        )

    @property
    def run(self) -> Run | None:
        if self.run_id is not None and self._run is None:
            self._run = Run.objects.filter(project=self.principal.project, pk=self.run_id).first()
            if self._run is None:
                raise NotFound(f"Run {self.run_id!r} not found.", run=self.run_id)
        return self._run

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
        _ = self.run  # raises NotFound for an unknown run
        raise StreamNotFound(f"Stream {self.key!r} not found.", stream=self.key)


def standalone_target(request: HttpRequest, name: str) -> Target:
    if not _NAME_RE.match(name) or ".." in name.split("/"):
        raise BadRequest(f"Stream name {name!r} is not valid.", stream=name)
    principal = authenticate(request, allow_public=settings.STREAMDASH_PUBLIC_DS)
    return Target(principal, name, None)


def run_target(request: HttpRequest, run_id: str, key: str) -> Target:
    if not _KEY_RE.match(key):
        raise BadRequest(
            f"Stream key {key!r} is not valid: use 1–200 letters, digits and . _ ~ : -",
            stream=key,
        )
    return Target(authenticate(request), key, run_id)


def touch(stream: Stream) -> None:
    """Sliding TTL: a stream created with Stream-TTL lives that long after its last use."""
    if stream.ttl_seconds is not None:
        stream.expires_at = timezone.now() + dt.timedelta(seconds=stream.ttl_seconds)
        Stream.objects.filter(pk=stream.pk).update(expires_at=stream.expires_at)
