"""Who is calling, and what they may do: API keys (scopes read/write/admin) and public tokens
(scopes naming one run, or one stream of one run). A token with no scope grants nothing.

Actions: "read", "write", "admin", and "send": appending to a run's input stream, which
``write:inputs:<run>`` grants a browser without any other write."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.http import HttpRequest
from django.utils import timezone

from apps.projects import credentials
from apps.projects.models import Project
from apps.projects.services import api_key_authenticate, public_project
from apps.projects.tokens import token_verify
from streamdash.core.errors import Forbidden, Unauthorized


@dataclass(frozen=True)
class Principal:
    project: Project
    scopes: frozenset[str]
    is_token: bool = False
    expires_at: dt.datetime | None = None
    key_id: int | None = None  # the API key's, for revocation of live connections

    def allows(self, action: str, *, run_id: str | None = None, key: str | None = None) -> bool:
        """May this caller ``action`` ("read", "write", "admin", "send") the run / stream /
        project?"""
        if action == "send":
            return self.allows("write", run_id=run_id) or (
                self.is_token and f"write:inputs:{run_id}" in self.scopes
            )
        if not self.is_token:
            return action in self.scopes or "admin" in self.scopes
        if run_id is None:
            return False
        if f"{action}:runs:{run_id}" in self.scopes:
            return True
        return (
            action == "read" and key is not None and f"read:streams:{run_id}/{key}" in (self.scopes)
        )

    def require(self, action: str, *, run_id: str | None = None, key: str | None = None) -> None:
        if not self.allows(action, run_id=run_id, key=key):
            target = f"run {run_id}" if run_id else "this project"
            if key:
                target = f"stream {run_id}/{key}"
            raise Forbidden(f"These credentials may not {action} {target}.", needed=action)


def bearer_credential(authorization: str | None, token: str | None) -> str | None:
    """The credential of a request: ``Authorization: Bearer …``, else ``?token=``
    (EventSource and WebSocket cannot set headers: browsers pass a token in the query)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("Use 'Authorization: Bearer <API key or token>'.")
        return value.strip()
    return token or None


def authenticate(request: HttpRequest, *, allow_public: bool = False) -> Principal:
    credential = bearer_credential(request.headers.get("Authorization"), request.GET.get("token"))
    return authenticate_credential(credential, allow_public=allow_public)


def authenticate_credential(credential: str | None, *, allow_public: bool = False) -> Principal:
    """The caller behind an API key or a public token (HTTP and WebSocket share this),
    remembered for a moment (``apps.projects.credentials``)."""
    principal: Principal = credentials.remembered(
        credential or "", allow_public, lambda: _verify(credential, allow_public)
    )
    if principal.expires_at is not None and principal.expires_at <= timezone.now():
        raise Unauthorized("The token has expired; ask your backend for a new one.")
    return principal


def _verify(credential: str | None, allow_public: bool) -> Principal:
    if not credential:
        if allow_public:
            return Principal(public_project(), frozenset({"read", "write", "admin"}))
        raise Unauthorized(
            "Authentication required: send 'Authorization: Bearer <API key or token>'."
        )
    if credential.startswith("sd_sk_"):
        key = api_key_authenticate(credential)
        return Principal(key.project, frozenset(key.scopes), key_id=key.pk)
    claims = token_verify(credential)
    project = Project.objects.filter(pk=claims.project_id).first()
    if project is None:
        raise Unauthorized("The token's project no longer exists.")
    return Principal(project, claims.scopes, is_token=True, expires_at=claims.expires_at)
