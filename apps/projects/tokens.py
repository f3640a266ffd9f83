"""Scoped public tokens (PROTOCOL.md §5): short-lived JWTs for browsers and untrusted workers.

HS256 only (the algorithm is pinned on decode, so ``alg: none`` and key-confusion tricks fail),
``aud`` and ``iss`` checked, 15 minutes by default. The signing key is derived from SECRET_KEY
with its own salt, so a token key never doubles as the session-signing key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

import jwt
from django.conf import settings
from django.utils import timezone

from streamdash.core.errors import BadRequest, Unauthorized

ALGORITHM = "HS256"
AUDIENCE = "streamdash"
ISSUER = "streamdash"
DEFAULT_TTL = dt.timedelta(minutes=15)
MAX_TTL = dt.timedelta(hours=24)
# Matched whole (fullmatch): with ``$`` a scope ending in a newline passed.
_SCOPE_RE = re.compile(
    r"read:runs:run_[0-9A-Z]{26}|write:runs:run_[0-9A-Z]{26}|write:inputs:run_[0-9A-Z]{26}"
    r"|read:streams:run_[0-9A-Z]{26}/[A-Za-z0-9._~:-]{1,200}"
)


@dataclass(frozen=True)
class TokenClaims:
    project_id: int
    scopes: frozenset[str]
    expires_at: dt.datetime


def _key() -> bytes:
    return hmac.new(
        settings.SECRET_KEY.encode(), b"streamdash.public-token.v1", hashlib.sha256
    ).digest()


def validate_scopes(scopes: Any) -> list[str]:
    if not isinstance(scopes, list) or not scopes:
        raise BadRequest("scopes must be a non-empty list of strings.", field="scopes")
    for scope in scopes:
        if not isinstance(scope, str) or not _SCOPE_RE.fullmatch(scope):
            raise BadRequest(
                f"Scope {scope!r} is not valid. Use read:runs:<run>, read:streams:<run>/<key>, "
                "write:runs:<run> or write:inputs:<run>.",
                field="scopes",
            )
    return list(scopes)


def token_mint(*, project_id: int, scopes: list[str], ttl: dt.timedelta | None = None) -> str:
    ttl = DEFAULT_TTL if ttl is None else ttl
    if ttl <= dt.timedelta(0) or ttl > MAX_TTL:
        raise BadRequest("ttl must be between 1 second and 24 hours.", field="ttl")
    now = timezone.now()
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": f"project:{project_id}",
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "scopes": validate_scopes(scopes),
    }
    return jwt.encode(claims, _key(), algorithm=ALGORITHM)


def token_verify(token: str) -> TokenClaims:
    try:
        claims = jwt.decode(
            token,
            _key(),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "aud", "iss", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The token has expired; ask your backend for a new one.") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"The token is not valid ({exc}).") from None
    sub = str(claims.get("sub", ""))
    scopes = claims.get("scopes")
    if not sub.startswith("project:") or not isinstance(scopes, list):
        raise Unauthorized("The token is not valid (bad claims).")
    return TokenClaims(
        project_id=int(sub.removeprefix("project:")),
        scopes=frozenset(str(s) for s in scopes),
        expires_at=dt.datetime.fromtimestamp(int(claims["exp"]), tz=dt.UTC),
    )
