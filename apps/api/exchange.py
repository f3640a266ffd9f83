"""A stream request and its response, independent of who serves them.

The stream URLs are served two ways with one implementation: by the lean ASGI app in front of
Django (``apps.api.lean``, what a real server runs: no Django request, middleware or URL
resolver) and by Django views (``apps.api.live_views``, what the test client and any other
Django-level caller reach). Both turn their request into a ``StreamRequest``, call
``live_views.dispatch`` and send back the ``StreamResponse`` it returns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse

from apps.api.ratelimit import rate_key
from apps.projects.access import bearer_credential
from apps.streams.live import DirectWrite


class Headers:
    """Request headers by case-insensitive name (repeated headers joined with ``", "``)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        values: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            values[key] = f"{values[key]}, {value}" if key in values else value
        self._values = values

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values


@dataclass
class StreamRequest:
    method: str
    headers: Headers
    query: Mapping[str, list[str]]
    body: bytes
    url: str  # absolute, for Location
    client: str  # the peer's address (rate limits of the public namespace)
    # True when the database may be reached on the shared pools (a real server); False for
    # Django's test client, whose test transaction lives on the calling thread's connection.
    pooled: bool = True

    @property
    def reader_key(self) -> str:
        """Who is reading, for the cap on live reads: the credential, else the address."""
        return rate_key(
            authorization=self.headers.get("Authorization") or "",
            token=self.query_value("token"),
            client=self.client,
        )

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    @property
    def credential(self) -> str | None:
        return bearer_credential(self.headers.get("Authorization"), self.query_value("token"))


@dataclass
class StreamResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # A streamed body (SSE, NDJSON), produced as it is sent; ``body`` is then unused.
    stream: AsyncIterator[bytes] | None = None
    # Called once the response is over, however it ends (a live read's lease, say).
    closers: list[Callable[[], None]] = field(default_factory=list)
    # A live read the hub may write to itself, given a way to write to the connection.
    direct: DirectWrite | None = None

    def __setitem__(self, name: str, value: str) -> None:
        self.headers[name] = value


def from_django(request: HttpRequest, body: bytes) -> StreamRequest:
    return StreamRequest(
        method=request.method or "GET",
        headers=Headers(request.headers.items()),
        query=dict(request.GET.lists()),
        body=body,
        url=request.build_absolute_uri(request.path),
        client=str(request.META.get("REMOTE_ADDR", "")),
        pooled=False,
    )


def to_django(response: StreamResponse) -> HttpResponseBase:
    django_response: HttpResponseBase
    if response.stream is not None:
        django_response = StreamingHttpResponse(response.stream, status=response.status)
    else:
        django_response = HttpResponse(response.body, status=response.status)
    if "Content-Type" not in response.headers:
        del django_response["Content-Type"]
    # Django calls a response's resource closers when the server is done with it.
    closers: list[Callable[[], None]] = django_response._resource_closers  # type: ignore[union-attr]  # private but stable since Django 1.x
    closers.extend(response.closers)
    for name, value in response.headers.items():
        django_response[name] = value
    return django_response
