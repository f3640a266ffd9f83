"""Projects and their API keys. Secrets are shown once and stored only as SHA-256 digests."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
from collections.abc import Sequence

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from apps.projects import credentials
from apps.projects.models import ApiKey, Project
from streamdash.core.clock import aware_datetime
from streamdash.core.errors import Conflict, NotFound, Unauthorized

logger = logging.getLogger(__name__)

SECRET_PREFIX = "sd_sk_"
# The channel-layer group every process's hub joins to hear of revoked keys and of users who
# lost access to a project (``access.revoked``: their open dashboard sockets end; with no
# project, the user lost staff status or was deactivated).
REVOCATION_GROUP = "streamdash.credentials"
ACCESS_REVOKED = "access.revoked"
PUBLIC_PROJECT = "public"
# last_used_at is a hint for operators, not an audit log: write it at most once a minute.
_LAST_USED_GRANULARITY = dt.timedelta(minutes=1)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def api_key_create(
    *, project: Project, name: str = "default", scopes: list[str] | None = None
) -> tuple[ApiKey, str]:
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        project=project,
        name=name,
        prefix=secret[: len(SECRET_PREFIX) + 6],
        digest=_digest(secret),
        scopes=list(scopes) if scopes is not None else ["read", "write", "admin"],
    )
    return key, secret


def project_create(*, name: str, members: Sequence[str] = ()) -> tuple[Project, str]:
    """A new project and its first key (all scopes), seen in the dashboard by the users named
    in ``members``. Returns the secret, which is not stored."""
    with transaction.atomic():
        if Project.objects.filter(name=name).exists():
            raise Conflict(f"A project named {name!r} already exists.", project=name)
        project = Project.objects.create(name=name)
        project_members_add(project=project, usernames=members)
        _, secret = api_key_create(project=project)
    return project, secret


def project_members_add(*, project: Project, usernames: Sequence[str]) -> None:
    """Let these users see the project in the dashboard. An unknown name adds no one."""
    users = get_user_model()
    found = {
        getattr(user, users.USERNAME_FIELD): user
        for user in users._default_manager.filter(**{f"{users.USERNAME_FIELD}__in": usernames})
    }
    missing = [name for name in usernames if name not in found]
    if missing:
        raise NotFound(f"No user named {missing[0]!r}.", username=missing[0])
    project.members.add(*found.values())


def project_members_remove(*, project: Project, user_ids: Sequence[int]) -> None:
    """Take these users off the project: its pages, exports and open dashboard sockets (in
    every server process) are closed to them from the commit on."""
    with transaction.atomic():
        project.members.remove(*user_ids)
        members_removed(project=project, user_ids=user_ids)


def members_removed(*, project: Project, user_ids: Sequence[int]) -> None:
    """Tell every process, after the commit, that these users no longer see ``project``
    (for a membership changed elsewhere, e.g. in the admin's form)."""
    for user_id in user_ids:
        message = {"type": ACCESS_REVOKED, "user": int(user_id), "project": project.pk}
        transaction.on_commit(lambda m=message: _broadcast(m))  # type: ignore[misc]


def user_status_set(
    *, user_id: int, is_staff: bool | None = None, is_active: bool | None = None
) -> None:
    """Make a dashboard user staff or not, active or not (``None``: unchanged). Losing either
    closes, from the commit on, the open dashboard sockets (in every server process) that it
    no longer allows: a deactivated user's all, a former staff member's on the projects they
    are not a member of."""
    changes = {"is_staff": is_staff, "is_active": is_active}
    with transaction.atomic():
        get_user_model()._default_manager.filter(pk=user_id).update(
            **{field: value for field, value in changes.items() if value is not None}
        )
        if is_staff is False or is_active is False:
            user_status_lowered(user_id=user_id)


def user_status_lowered(*, user_id: int) -> None:
    """Tell every process, after the commit, that this user lost staff (or superuser) status
    or was deactivated (for a change made elsewhere, e.g. in the admin's user form): their
    open sockets read the user again and close if it no longer allows them."""
    message = {"type": ACCESS_REVOKED, "user": int(user_id), "project": None}
    transaction.on_commit(lambda: _broadcast(message))


def _broadcast(message: dict[str, object]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(REVOCATION_GROUP, message)
    except Exception:
        # The socket's own re-read (each run or stream refresh goes through the viewer's
        # access) still hides the project; only the open socket's tail is late.
        logger.warning("could not broadcast %s", message, exc_info=True)


def api_key_authenticate(secret: str) -> ApiKey:
    """The live key behind a secret. Every API request runs this, so it is one SQL statement
    rather than an ORM query (whose construction alone costs about 1 ms: see
    apps/streams/rows.py); a revoked key fails on its very next request."""
    if not secret.startswith(SECRET_PREFIX):
        raise Unauthorized("The API key is not a streamdash secret key (sd_sk_…).")
    with connection.cursor() as cursor:
        cursor.execute(_AUTH_SQL, [_digest(secret)])
        row = cursor.fetchone()
    if row is None:
        raise Unauthorized("The API key is unknown or revoked.")
    key_id, name, prefix, scopes, last_used, project_id, project_name, days, created = row
    project = Project(id=project_id, name=project_name, retention_days=days)
    created_at = aware_datetime(created)
    assert created_at is not None  # the column is NOT NULL
    project.created_at = created_at
    key = ApiKey(
        id=key_id,
        project=project,
        name=name,
        prefix=prefix,
        scopes=json.loads(scopes) if isinstance(scopes, str) else scopes,
        last_used_at=aware_datetime(last_used),
    )
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_GRANULARITY:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


_AUTH_SQL = (
    f"SELECT k.id, k.name, k.prefix, k.scopes, k.last_used_at, p.id, p.name, "
    f'p.retention_days, p.created_at FROM "{ApiKey._meta.db_table}" k '
    f'JOIN "{Project._meta.db_table}" p ON p.id = k.project_id '
    "WHERE k.digest = %s AND k.revoked_at IS NULL"
)


def api_key_revoke(*, key: ApiKey) -> None:
    """Revoke a key: it stops working at once, in every server process, open connections
    included (``apps.projects.credentials``)."""
    with transaction.atomic():
        ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        # Forgetting is harmless even if this rolls back; ending live readers waits for commit.
        credentials.forget_key(key.pk)
        transaction.on_commit(lambda: _announce_revoked(key.pk))


def _announce_revoked(key_id: int) -> None:
    credentials.key_revoked(key_id)
    backend = str(settings.CHANNEL_LAYERS["default"]["BACKEND"])
    if "InMemory" in backend:
        return  # one process: forgetting it here was all there was to do
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            REVOCATION_GROUP, {"type": "credentials.revoked", "key": key_id}
        )
    except Exception:
        # The hubs' once-a-second re-check of live keys still ends its connections.
        logger.warning("could not broadcast the revocation of API key %s", key_id, exc_info=True)


def revoked_among(key_ids: list[int]) -> list[int]:
    """Which of these keys are revoked (or gone): the hub's safety re-check of live keys."""
    live = set(
        ApiKey.objects.filter(pk__in=key_ids, revoked_at__isnull=True).values_list("pk", flat=True)
    )
    return [key_id for key_id in key_ids if key_id not in live]


def public_project() -> Project:
    """The project that owns standalone streams when STREAMDASH_PUBLIC_DS is on."""
    project, _ = Project.objects.get_or_create(name=PUBLIC_PROJECT)
    return project


def api_key_find(*, ref: str) -> ApiKey:
    """A key by id or by its shown prefix (``sd_sk_abcdef``); ambiguity is an error."""
    keys = ApiKey.objects.select_related("project")
    found = list(keys.filter(pk=int(ref))) if ref.isdigit() else list(keys.filter(prefix=ref))
    if len(found) != 1:
        raise Conflict(
            f"{len(found)} keys match {ref!r}; use the key's id from `apikey list`.", ref=ref
        )
    return found[0]
