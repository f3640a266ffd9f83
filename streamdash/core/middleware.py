"""A base for streamdash's middleware: one class that runs natively in sync and async stacks.

Django's ``MiddlewareMixin`` runs sync hooks through ``sync_to_async`` in an async stack, a
thread hop per request (see streamdash/handlers.py). Ours are plain functions on the request and
response, cheap enough to run on the event loop, so they declare both capabilities and run in
whichever mode the stack around them uses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase


class HookMiddleware:
    """Subclasses override ``before`` (a response there ends the request) and/or ``after``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def before(self, request: HttpRequest) -> HttpResponseBase | None:
        return None

    async def abefore(self, request: HttpRequest) -> HttpResponseBase | None:
        """``before`` in an async stack; override when the hook has I/O to await."""
        return self.before(request)

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        return response

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        return self.after(request, self.before(request) or self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        return self.after(request, await self.abefore(request) or await get_response(request))
