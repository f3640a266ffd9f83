"""Dashboard sockets against a real Redis that goes away: they open anyway (they used to reset
at the handshake), say their live updates are paused, and follow run changes again when Redis
is back. And a user taken off a project loses its open sockets at once."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from apps.dashboard import consumers
from apps.dashboard.routing import websocket_urlpatterns
from apps.projects.models import Project
from apps.projects.services import project_members_remove, user_status_set
from apps.runs.services import run_create
from apps.streams.layer import health
from apps.streams.services import chunks_append
from tests.factories import make_project, make_stream
from tests.services import RedisServer

pytestmark = pytest.mark.django_db(transaction=True)

application = URLRouter(websocket_urlpatterns)
ROW = re.compile(r'<tr id="c-(\d+)" data-index="\1">')
_users = itertools.count()


@pytest.fixture
def redis(settings, monkeypatch) -> Iterator[RedisServer]:
    """A private Redis as the channel layer (the test kills it), quick re-checks."""
    server = RedisServer().start()
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [server.url]},
        }
    }
    settings.STREAMDASH_TAIL_CHECK_SECONDS = 0.3
    monkeypatch.setattr(consumers, "LAYER_CHECK_SECONDS", 0.1)
    health.down_since = None
    try:
        yield server
    finally:
        server.kill()
        health.down_since = None


@sync_to_async
def _member(*projects: Project, staff: bool = False) -> tuple[int, bytes]:
    """A new user, a member of ``projects``: their id and session cookie."""
    user = get_user_model().objects.create_user(
        f"rs-{next(_users)}", password="x-pw-123456", is_staff=staff
    )
    for project in projects:
        project.members.add(user)
    client = Client()
    client.force_login(user)
    return user.pk, f"sessionid={client.cookies['sessionid'].value}".encode()


async def _connect(path: str, cookie: bytes) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=[(b"cookie", cookie)])
    connected, code = await communicator.connect(timeout=10)
    assert connected, code
    return communicator


async def _closed(socket: WebsocketCommunicator) -> int:
    """The close code the socket ends with (other messages are skipped); then the consumer
    is told the socket is gone, as the server would tell it, and ends its tasks."""
    async with asyncio.timeout(5):
        while (message := await socket.receive_output(timeout=5))["type"] != "websocket.close":
            pass
    await socket.disconnect()
    return int(message["code"])


async def _until(communicator: WebsocketCommunicator, pattern: str, seconds: float = 20) -> str:
    """The first message matching ``pattern`` (others are skipped)."""
    async with asyncio.timeout(seconds):
        while True:
            message = await communicator.receive_from(timeout=seconds)
            if re.search(pattern, message):
                return message


async def test_dashboard_sockets_open_and_degrade_while_redis_is_away(redis: RedisServer):
    project, _ = await sync_to_async(make_project)()
    _, cookie = await _member(project)
    stream = await sync_to_async(make_stream)(project)
    redis.kill()
    runs = await _connect("/ws/runs/?page=list", cookie)
    viewer = await _connect(f"/ws/streams/{stream.pk}/?from=0", cookie)
    await _until(runs, "live updates paused")
    # Chunks keep coming to the viewer through the hub's tail re-check.
    await sync_to_async(chunks_append)(stream_id=stream.pk, chunks=[b'"while away"'])
    assert ROW.findall(await _until(viewer, ROW.pattern)) == ["0"]

    redis.start()
    await _until(runs, r'id="live-status"[^>]*>\s*</span>')
    # Redis back: run changes reach the socket again, through Redis.
    run = await sync_to_async(run_create)(project=project, task_id="after")
    await _until(runs, f'id="run-{run.id}"')
    await runs.disconnect()
    await viewer.disconnect()


@pytest.mark.parametrize("taken", ["membership", "staff status"])
async def test_user_who_loses_a_project_loses_its_open_sockets_at_once(taken: str):
    """Taken off the project, or no longer staff (and not a member of the project)."""
    project, _ = await sync_to_async(make_project)()
    other, _ = await sync_to_async(make_project)()
    if taken == "membership":
        user_id, cookie = await _member(project, other)
    else:
        user_id, cookie = await _member(other, staff=True)
    stream = await sync_to_async(make_stream)(project)
    run = await sync_to_async(run_create)(project=project, task_id="seen")
    kept = await sync_to_async(run_create)(project=other, task_id="kept")
    viewer = await _connect(f"/ws/streams/{stream.pk}/?from=0", cookie)
    run_page = await _connect(f"/ws/runs/{run.id}/", cookie)
    other_page = await _connect(f"/ws/runs/{kept.id}/", cookie)
    runs = await _connect("/ws/runs/?page=list", cookie)

    if taken == "membership":
        await sync_to_async(project_members_remove)(project=project, user_ids=[user_id])
    else:
        await sync_to_async(user_status_set)(user_id=user_id, is_staff=False)

    for socket in (viewer, run_page):
        assert await _closed(socket) == consumers.CLOSE_FORBIDDEN
    # The runs list drops the project's rows; the other project's page stays open.
    await _until(runs, f'<tr id="run-{run.id}" hx-swap-oob="delete">', seconds=5)
    assert await other_page.receive_nothing(timeout=0.5)
    await runs.disconnect()
    await other_page.disconnect()


async def test_deactivated_user_loses_every_open_socket():
    project, _ = await sync_to_async(make_project)()
    user_id, cookie = await _member(project)
    stream = await sync_to_async(make_stream)(project)
    run = await sync_to_async(run_create)(project=project, task_id="seen")
    sockets = [
        await _connect(f"/ws/streams/{stream.pk}/?from=0", cookie),
        await _connect(f"/ws/runs/{run.id}/", cookie),
        await _connect("/ws/runs/?page=list", cookie),
    ]

    await sync_to_async(user_status_set)(user_id=user_id, is_active=False)

    for socket in sockets:
        assert await _closed(socket) == consumers.CLOSE_UNAUTHENTICATED


@sync_to_async
def _admin_unchecks_staff(user_id: int) -> None:
    admin = get_user_model().objects.create_superuser(f"rs-admin-{next(_users)}", password="x")
    client = Client()
    client.force_login(admin)
    user = get_user_model().objects.get(pk=user_id)
    data = {
        "username": user.username,
        "is_active": "on",  # is_staff: unchecked
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
    }
    response = client.post(f"/admin/auth/user/{user_id}/change/", data)
    assert response.status_code == 302, response.content


async def test_staff_unchecked_in_the_user_admin_closes_the_sockets_it_allowed():
    project, _ = await sync_to_async(make_project)()
    user_id, cookie = await _member(staff=True)
    stream = await sync_to_async(make_stream)(project)
    viewer = await _connect(f"/ws/streams/{stream.pk}/?from=0", cookie)

    await _admin_unchecks_staff(user_id)

    assert await _closed(viewer) == consumers.CLOSE_FORBIDDEN
