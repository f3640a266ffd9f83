"""The dashboard socket's Origin check: the page must come from this very origin.

The dashboard's WebSockets authenticate with the session cookie, which a browser sends from any
page, so the Origin header is what stops another site (or another port or scheme of this host:
``http://127.0.0.1:9999``, ``https://localhost`` against ``http://localhost``) from reading a
user's streams. Channels' ``AllowedHostsOriginValidator`` compares only the host name; this
compares scheme, host and port with the socket's own, as Django's CSRF check does for forms,
and accepts ``CSRF_TRUSTED_ORIGINS`` besides.
"""

from __future__ import annotations

from typing import Any

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _is_secure(scope: dict[str, Any]) -> bool:
    if scope.get("scheme") in ("wss", "https"):
        return True
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        name, secure_value = proxy
        header = name.removeprefix("HTTP_").replace("_", "-").lower().encode()
        return _header(scope, header) == secure_value
    return False


def same_origin(scope: dict[str, Any]) -> bool:
    origin, host = _header(scope, b"origin"), _header(scope, b"host")
    if not origin or not host:
        return False
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    own = f"{'https' if _is_secure(scope) else 'http'}://{host.lower()}"
    return origin.lower() == own or origin in settings.CSRF_TRUSTED_ORIGINS


class SameOriginValidator:
    """ASGI middleware: WebSocket handshakes from any other origin are refused (403)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not same_origin(scope):
            denier = WebsocketDenier()
            # The stubs type a consumer's scope as Channels' TypedDict; ASGI passes a plain dict.
            return await denier(scope, receive, send)  # type: ignore[arg-type]
        return await self.application(scope, receive, send)
