"""Which stream a URL names, for whom: standalone (/ds/v1/stream/<name>) or a run's stream
(/api/v1/runs/<run>/streams/<key>). Authentication and scope checks happen here, once."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from apps.projects.access import Principal, authenticate
from apps.runs.models import Run
from apps.streams.errors import BadRequest, NotFound, StreamNotFound
from apps.streams.models import Stream

_KEY_RE = re.compile(r"^[A-Za-z0-9._~:-]{1,200}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9._~:/-]{1,500}$")


@dataclass(frozen=True)
class Target:
    principal: Principal
    key: str
    run: Run | None

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run is not None else None

    def require(self, action: str) -> None:
        self.principal.require(action, run_id=self.run_id, key=self.key if self.run else None)

    def lookup(self) -> Stream | None:
        if self.run is not None:
            return Stream.objects.filter(run=self.run, key=self.key).first()
        return Stream.objects.filter(
            project=self.principal.project, run__isnull=True, key=self.key
        ).first()

    def stream(self) -> Stream:
        """The live stream, or 404. An expired stream is as good as gone (and removed lazily
        by the next create or the purge)."""
        stream = self.lookup()
        if stream is None or (
            stream.expires_at is not None and stream.expires_at <= timezone.now()
        ):
            raise StreamNotFound(f"Stream {self.key!r} not found.", stream=self.key)
        return stream


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
    principal = authenticate(request)
    run = Run.objects.filter(project=principal.project, pk=run_id).first()
    if run is None:
        raise NotFound(f"Run {run_id!r} not found.", run=run_id)
    return Target(principal, key, run)


def touch(stream: Stream) -> None:
    """Sliding TTL: a stream created with Stream-TTL lives that long after its last use."""
    if stream.ttl_seconds is not None:
        stream.expires_at = timezone.now() + dt.timedelta(seconds=stream.ttl_seconds)
        Stream.objects.filter(pk=stream.pk).update(expires_at=stream.expires_at)
