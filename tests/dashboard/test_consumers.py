"""Dashboard sockets with Channels' WebsocketCommunicator: chunks in order from the resume
index, batched; anonymous users refused; run pages updated live."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from apps.dashboard import feeds
from apps.dashboard.routing import websocket_urlpatterns
from apps.runs.services import run_create, run_update
from apps.streams.services import chunks_append, stream_close
from tests.factories import make_project, make_run, make_stream

pytestmark = pytest.mark.django_db(transaction=True)

application = URLRouter(websocket_urlpatterns)
ROW = re.compile(r'<tr id="c-(\d+)" data-index="\1">')
BATCH = re.compile(r'data-first="(\d+)" data-next="(\d+)" data-count="(\d+)"')


@sync_to_async
def _session_cookie() -> bytes:
    user = get_user_model().objects.create_user("ws-operator", password="x-pw-123456")
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def _connect(path: str, cookie: bytes | None) -> WebsocketCommunicator:
    headers = [(b"cookie", cookie)] if cookie else []
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    assert connected, code
    return communicator


async def _rows_until(communicator: WebsocketCommunicator, want: int) -> tuple[list[int], list]:
    seen: list[int] = []
    batches = []
    while len(seen) < want:
        message = await communicator.receive_from(timeout=5)
        batches.append(BATCH.search(message).groups())
        seen.extend(int(i) for i in ROW.findall(message))
    return seen, batches


async def test_anonymous_socket_is_refused():
    project, _ = await sync_to_async(make_project)()
    stream = await sync_to_async(make_stream)(project)
    communicator = WebsocketCommunicator(application, f"/ws/streams/{stream.pk}/?from=0")
    connected, code = await communicator.connect(timeout=5)
    assert not connected
    assert code == 4401


async def test_stream_socket_sends_every_chunk_from_the_resume_index_then_live():
    cookie = await _session_cookie()
    project, _ = await sync_to_async(make_project)()
    stream = await sync_to_async(make_stream)(project, chunks=[b'"t%d"' % i for i in range(5)])
    communicator = await _connect(f"/ws/streams/{stream.pk}/?from=2", cookie)
    seen, batches = await _rows_until(communicator, 3)
    assert seen == [2, 3, 4]
    assert batches[0][0] == "2"
    await sync_to_async(chunks_append)(stream_id=stream.pk, chunks=[b'"<b>x</b>"', b'"y"'])
    more, _ = await _rows_until(communicator, 2)
    assert more == [5, 6]
    await sync_to_async(stream_close)(stream_id=stream.pk)
    while True:  # the last message says the stream ended, then the socket closes cleanly
        message = await communicator.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            assert message.get("code", 1000) == 1000
            break
        assert 'data-end="1"' in message["text"] or "data-closed" in message["text"]
    await communicator.disconnect()


async def test_stream_socket_batches_a_burst(monkeypatch):
    monkeypatch.setattr(feeds, "MAX_ROWS", 400)
    cookie = await _session_cookie()
    project, _ = await sync_to_async(make_project)()
    stream = await sync_to_async(make_stream)(project, chunks=[b"%d" % i for i in range(1000)])
    communicator = await _connect(f"/ws/streams/{stream.pk}/?from=0", cookie)
    seen, batches = await _rows_until(communicator, 1000)
    assert seen == list(range(1000))
    assert len(batches) <= 4  # 1,000 chunks in a few messages, not 1,000
    assert all(int(n) <= 400 for _, _, n in batches)
    await communicator.disconnect()


async def test_stream_socket_escapes_chunk_text():
    cookie = await _session_cookie()
    project, _ = await sync_to_async(make_project)()
    evil = b'{"text": "<script>alert(1)</script><img src=x onerror=alert(2) hx-get=/x>"}'
    stream = await sync_to_async(make_stream)(project, chunks=[evil])
    communicator = await _connect(f"/ws/streams/{stream.pk}/?from=0", cookie)
    message = await communicator.receive_from(timeout=5)
    assert "<script>" not in message
    assert "<img" not in message
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message
    await communicator.disconnect()


async def test_stream_socket_replays_with_original_timing(monkeypatch):
    cookie = await _session_cookie()
    project, _ = await sync_to_async(make_project)()
    stream = await sync_to_async(make_stream)(project, chunks=[b"1", b"2"])
    await sync_to_async(chunks_append)(stream_id=stream.pk, chunks=[b"3"])
    sleeps: list[float] = []

    async def recording_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr(feeds, "replay_sleep", recording_sleep)
    communicator = await _connect(f"/ws/streams/{stream.pk}/?from=0&speed=100", cookie)
    seen, _ = await _rows_until(communicator, 3)
    assert seen == [0, 1, 2]
    # One wait: between chunk 1 and chunk 2 (written by different appends), scaled by 1/100.
    assert len(sleeps) == 1
    assert 0 < sleeps[0] < 1
    await communicator.disconnect()


async def test_runs_socket_adds_new_runs_and_replaces_changed_ones():
    cookie = await _session_cookie()
    project, _ = await sync_to_async(make_project)()
    old = await sync_to_async(make_run)(project, task_id="old")
    communicator = await _connect("/ws/runs/?page=list", cookie)
    new = await sync_to_async(run_create)(project=project, task_id="fresh")
    message = await communicator.receive_from(timeout=5)
    assert 'hx-swap-oob="afterbegin:#run-rows"' in message
    assert f'id="run-{new.id}"' in message
    await sync_to_async(run_update)(project=project, run_id=old.id, status="executing")
    message = await communicator.receive_from(timeout=5)
    assert f'id="run-{old.id}" hx-swap-oob="true"' in message
    assert "executing" in message
    await communicator.disconnect()


async def test_runs_socket_respects_filters():
    cookie = await _session_cookie()
    project, _ = await sync_to_async(make_project)()
    communicator = await _connect("/ws/runs/?page=list&task=wanted", cookie)
    await sync_to_async(run_create)(project=project, task_id="other")
    wanted = await sync_to_async(run_create)(project=project, task_id="wanted")
    message = await communicator.receive_from(timeout=5)
    assert wanted.id in message
    assert "other" not in message
    await communicator.disconnect()


async def test_run_socket_updates_stream_counts_and_status():
    cookie = await _session_cookie()
    project, _ = await sync_to_async(make_project)()
    run = await sync_to_async(make_run)(project)
    stream = await sync_to_async(make_stream)(project, "ai", run=run)
    communicator = await _connect(f"/ws/runs/{run.id}/", cookie)
    await sync_to_async(chunks_append)(stream_id=stream.pk, chunks=[b"1", b"2", b"3"])
    message = await communicator.receive_from(timeout=5)
    assert 'id="stream-rows"' in message
    assert re.search(r'<td class="num">3</td>', message)
    await sync_to_async(run_update)(project=project, run_id=run.id, status="completed")
    for _ in range(5):
        message = await communicator.receive_from(timeout=5)
        if "badge-completed" in message:
            break
    assert "badge-completed" in message
    assert "badge-closed" in message
    await communicator.disconnect()
