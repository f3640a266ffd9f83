"""``Client`` and ``AsyncClient``: mirrored twins over the I/O-free core.

Each sends ``Request`` values with retries (``Attempts`` decides; the twin only sleeps) and
follows resumable live reads (``follow``), reconnecting from the plan's position after any drop
as ``ReconnectPolicy`` says (``Reconnects`` decides; the twin only sleeps).
Transports are injectable (``transport=``) for tests and proxies; nothing is built at import.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from streamdash.sdk._config import Settings, current_settings
from streamdash.sdk._core import Request, _Plan, error_from
from streamdash.sdk._exceptions import APIConnectionError
from streamdash.sdk._retry import Attempts, OnRetry, ReconnectPolicy, Reconnects, RetryPolicy
from streamdash.sdk._sse import SSEDecoder

__all__ = ["AsyncClient", "Client"]

T = TypeVar("T")
_USER_AGENT = "streamdash-python/0.1"
_MIN_LIVE_SECONDS = 1.0


def _check_clean_end(done: bool, received: bool, began: float) -> None:
    """A live response that ended cleanly but at once, with nothing, counts as a failure:
    otherwise a proxy that closes every connection would make the read spin."""
    if not done and not received and time.monotonic() - began < _MIN_LIVE_SECONDS:
        raise APIConnectionError("The live read ended before delivering anything.")


class _BaseClient:
    """What both twins share: settings, headers, timeouts."""

    def __init__(
        self,
        *,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        reconnect: ReconnectPolicy | None = None,
    ) -> None:
        base = current_settings()
        self.settings: Settings = Settings(
            url=(url or base.url).rstrip("/"),
            api_key=api_key if api_key is not None else base.api_key,
            timeout=timeout if timeout is not None else base.timeout,
            live_read_timeout=base.live_read_timeout,
            retry=retry or base.retry,
            reconnect=reconnect or base.reconnect,
        )
        self.registered: set[str] = set()  # stream definitions registered through this client

    @property
    def url(self) -> str:
        return self.settings.url

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": _USER_AGENT}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        return headers

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.settings.timeout, connect=min(10.0, self.settings.timeout))

    def _live_timeout(self) -> httpx.Timeout:
        # Heartbeats arrive every ~15 s: longer silence means a dead line, so reconnect.
        return httpx.Timeout(self.settings.timeout, read=self.settings.live_read_timeout)


class Client(_BaseClient):
    def __init__(
        self,
        *,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        reconnect: ReconnectPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            url=url, api_key=api_key, timeout=timeout, retry=retry, reconnect=reconnect
        )
        self._http = httpx.Client(
            base_url=self.url, headers=self._headers(), timeout=self._timeout(), transport=transport
        )

    def request(self, request: Request, *, retry: RetryPolicy | None = None) -> httpx.Response:
        """Send with retries; a 4xx/5xx answer raises its ``APIError``."""
        attempts = Attempts(retry or self.settings.retry)
        while True:
            try:
                response = self._http.request(
                    request.method,
                    request.path,
                    params=request.params,
                    headers=request.headers,
                    content=request.content,
                )
                if response.status_code >= 400:
                    raise error_from(response.status_code, response.headers, response.content)
                return response
            except Exception as exc:
                time.sleep(attempts.after_failure(exc))

    def json(self, request: Request) -> Any:
        response = self.request(request)
        return response.json() if response.content else None

    def follow(self, plan: _Plan[T], *, on_retry: OnRetry | None = None) -> Iterator[T]:
        """Every item of a live read, resuming after drops until the plan is done."""
        reconnects = Reconnects(self.settings.reconnect, on_retry=on_retry)
        while not plan.done:
            request = plan.request()
            if request is None:
                return
            began, received, heard = time.monotonic(), False, False
            try:
                with self._http.stream(
                    request.method,
                    request.path,
                    params=request.params,
                    headers=request.headers,
                    timeout=self._live_timeout(),
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise error_from(response.status_code, response.headers, response.content)
                    decoder = SSEDecoder()
                    for line in response.iter_lines():
                        event = decoder.feed(line)
                        if event is None:
                            continue
                        if not heard:
                            heard = True
                            reconnects.connected()
                        items = plan.on_event(event)
                        if items:
                            received = True
                            yield from items
                        if plan.done:
                            return
                plan.on_end()
                _check_clean_end(plan.done, received, began)
            except Exception as exc:
                time.sleep(reconnects.after_failure(exc, had_data=received))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(_BaseClient):
    def __init__(
        self,
        *,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        reconnect: ReconnectPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            url=url, api_key=api_key, timeout=timeout, retry=retry, reconnect=reconnect
        )
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=self._headers(), timeout=self._timeout(), transport=transport
        )

    async def request(
        self, request: Request, *, retry: RetryPolicy | None = None
    ) -> httpx.Response:
        """Send with retries; a 4xx/5xx answer raises its ``APIError``."""
        attempts = Attempts(retry or self.settings.retry)
        while True:
            try:
                response = await self._http.request(
                    request.method,
                    request.path,
                    params=request.params,
                    headers=request.headers,
                    content=request.content,
                )
                if response.status_code >= 400:
                    raise error_from(response.status_code, response.headers, response.content)
                return response
            except Exception as exc:
                await asyncio.sleep(attempts.after_failure(exc))

    async def json(self, request: Request) -> Any:
        response = await self.request(request)
        return response.json() if response.content else None

    async def follow(self, plan: _Plan[T], *, on_retry: OnRetry | None = None) -> AsyncIterator[T]:
        """Every item of a live read, resuming after drops until the plan is done."""
        reconnects = Reconnects(self.settings.reconnect, on_retry=on_retry)
        while not plan.done:
            request = plan.request()
            if request is None:
                return
            began, received, heard = time.monotonic(), False, False
            try:
                async with self._http.stream(
                    request.method,
                    request.path,
                    params=request.params,
                    headers=request.headers,
                    timeout=self._live_timeout(),
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise error_from(response.status_code, response.headers, response.content)
                    decoder = SSEDecoder()
                    async for line in response.aiter_lines():
                        event = decoder.feed(line)
                        if event is None:
                            continue
                        if not heard:
                            heard = True
                            reconnects.connected()
                        items = plan.on_event(event)
                        if items:
                            received = True
                            for item in items:
                                yield item
                        if plan.done:
                            return
                plan.on_end()
                _check_clean_end(plan.done, received, began)
            except Exception as exc:
                await asyncio.sleep(reconnects.after_failure(exc, had_data=received))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
