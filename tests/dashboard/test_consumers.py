"""Dashboard sockets with Channels' WebsocketCommunicator: chunks in order from the resume
index, batched; anonymous users refused; run pages updated live; another project's stream or
run refused and its runs never shown."""

from __future__ import annotations

import itertools
import re

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from apps.dashboard import consumers, feeds
from apps.dashboard.routing import websocket_urlpatterns
from apps.projects.models import Project
from apps.runs.services import run_create, run_update
from apps.streams.services import chunks_append, stream_close
from tests.factories import make_project, make_run, make_stream

pytestmark = pytest.mark.django_db(transaction=True)

application = URLRouter(websocket_urlpatterns)
ROW = re.compile(r'<tr id="c-(\d+)" data-index="\1">')
BATCH = re.compile(r'data-first="(\d+)" data-next="(\d+)" data-count="(\d+)"')
_users = itertools.count()


@sync_to_async
def _session_cookie(*projects: Project, **fields: bool) -> bytes:
    """A logged-in session of a new user, a member of ``projects``."""
    user = get_user_model().objects.create_user(
        f"ws-operator-{next(_users)}", password="x-pw-123456", **fields
    )
    for project in projects:
        project.members.add(user)
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
    project, _ = await sync_to_async(make_project)()
    cookie = await _session_cookie(project)
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
    project, _ = await sync_to_async(make_project)()
    cookie = await _session_cookie(project)
    stream = await sync_to_async(make_stream)(project, chunks=[b"%d" % i for i in range(1000)])
    communicator = await _connect(f"/ws/streams/{stream.pk}/?from=0", cookie)
    seen, batches = await _rows_until(communicator, 1000)
    assert seen == list(range(1000))
    assert len(batches) <= 4  # 1,000 chunks in a few messages, not 1,000
    assert all(int(n) <= 400 for _, _, n in batches)
    await communicator.disconnect()


async def test_stream_socket_escapes_chunk_text():
    project, _ = await sync_to_async(make_project)()
    cookie = await _session_cookie(project)
    evil = b'{"text": "<script>alert(1)</script><img src=x onerror=alert(2) hx-get=/x>"}'
    stream = await sync_to_async(make_stream)(project, chunks=[evil])
    communicator = await _connect(f"/ws/streams/{stream.pk}/?from=0", cookie)
    message = await communicator.receive_from(timeout=5)
    assert "<script>" not in message
    assert "<img" not in message
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message
    await communicator.disconnect()


async def test_stream_socket_replays_with_original_timing(monkeypatch):
    project, _ = await sync_to_async(make_project)()
    cookie = await _session_cookie(project)
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
    project, _ = await sync_to_async(make_project)()
    cookie = await _session_cookie(project)
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
    project, _ = await sync_to_async(make_project)()
    cookie = await _session_cookie(project)
    communicator = await _connect("/ws/runs/?page=list&task=wanted", cookie)
    await sync_to_async(run_create)(project=project, task_id="other")
    wanted = await sync_to_async(run_create)(project=project, task_id="wanted")
    message = await communicator.receive_from(timeout=5)
    assert wanted.id in message
    assert "other" not in message
    await communicator.disconnect()


async def test_run_socket_updates_stream_counts_and_status():
    project, _ = await sync_to_async(make_project)()
    cookie = await _session_cookie(project)
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


async def _until(communicator: WebsocketCommunicator, text: str) -> str:
    """The first message that holds ``text`` (the socket re-renders at most once a second)."""
    for _ in range(10):
        message = await communicator.receive_from(timeout=5)
        if text in message:
            return message
    raise AssertionError(f"no message held {text!r}")


def _family(message: str) -> str:
    start = message.index('<section class="card" id="run-family"')
    return message[start : message.index("</section>", start)]


async def test_run_socket_shows_a_new_child_and_its_status_on_the_parents_page():
    project, _ = await sync_to_async(make_project)()
    cookie = await _session_cookie(project)
    parent = await sync_to_async(run_create)(project=project, task_id="parent-task")
    communicator = await _connect(f"/ws/runs/{parent.id}/", cookie)
    child = await sync_to_async(run_create)(
        project=project, task_id="child-task", parent_id=parent.id
    )
    family = _family(await _until(communicator, child.id))
    assert "hidden" not in family.split(">", 1)[0]
    assert "child-task · queued" in family
    await sync_to_async(run_update)(project=project, run_id=child.id, status="completed")
    assert "child-task · completed" in _family(await _until(communicator, "child-task · completed"))
    await communicator.disconnect()


async def test_run_socket_shows_the_parents_new_status_on_a_childs_page_not_a_siblings():
    project, _ = await sync_to_async(make_project)()
    cookie = await _session_cookie(project)
    parent = await sync_to_async(run_create)(project=project, task_id="parent-task")
    child = await sync_to_async(run_create)(
        project=project, task_id="child-task", parent_id=parent.id
    )
    communicator = await _connect(f"/ws/runs/{child.id}/", cookie)
    sibling = await sync_to_async(run_create)(
        project=project, task_id="sibling-task", parent_id=parent.id
    )
    await sync_to_async(run_update)(project=project, run_id=parent.id, status="executing")
    family = _family(await _until(communicator, "parent-task · executing"))
    assert sibling.id not in family
    await communicator.disconnect()


# --- per-project access ----------------------------------------------------------------------


async def _refused(path: str, cookie: bytes) -> int:
    communicator = WebsocketCommunicator(application, path, headers=[(b"cookie", cookie)])
    connected, code = await communicator.connect(timeout=5)
    assert not connected
    return code


async def test_sockets_of_another_projects_stream_and_run_are_refused():
    mine, _ = await sync_to_async(make_project)()
    theirs, _ = await sync_to_async(make_project)()
    run = await sync_to_async(make_run)(theirs)
    stream = await sync_to_async(make_stream)(theirs, "ai", run=run, chunks=[b'"secret"'])
    cookie = await _session_cookie(mine)
    # 4404, as for a stream or run that does not exist: nothing tells the two apart.
    assert await _refused(f"/ws/streams/{stream.pk}/?from=0", cookie) == 4404
    assert await _refused("/ws/streams/999999/?from=0", cookie) == 4404
    assert await _refused(f"/ws/runs/{run.id}/", cookie) == 4404
    assert await _refused("/ws/runs/run_01NOSUCHRUN/", cookie) == 4404


async def test_staff_sockets_follow_any_project():
    project, _ = await sync_to_async(make_project)()
    run = await sync_to_async(make_run)(project)
    stream = await sync_to_async(make_stream)(project, "ai", run=run, chunks=[b'"a"'])
    cookie = await _session_cookie(is_staff=True)
    communicator = await _connect(f"/ws/streams/{stream.pk}/?from=0", cookie)
    seen, _ = await _rows_until(communicator, 1)
    assert seen == [0]
    await communicator.disconnect()
    communicator = await _connect(f"/ws/runs/{run.id}/", cookie)
    await communicator.disconnect()


async def test_runs_socket_shows_only_the_users_projects():
    mine, _ = await sync_to_async(make_project)()
    theirs, _ = await sync_to_async(make_project)()
    old = await sync_to_async(make_run)(theirs, task_id="their-old")
    cookie = await _session_cookie(mine)
    communicator = await _connect("/ws/runs/?page=list", cookie)
    # Their new run and their run's change are broadcast to every runs socket, then dropped.
    await sync_to_async(run_create)(project=theirs, task_id="their-new")
    await sync_to_async(run_update)(project=theirs, run_id=old.id, status="executing")
    own = await sync_to_async(run_create)(project=mine, task_id="my-new")
    message = await communicator.receive_from(timeout=5)
    assert f'id="run-{own.id}"' in message
    assert "their-" not in message
    assert await communicator.receive_nothing(timeout=1)
    await communicator.disconnect()


async def test_home_counters_count_only_the_users_projects(monkeypatch):
    monkeypatch.setattr(consumers.RunsConsumer, "COUNTER_SECONDS", 0.05)
    mine, _ = await sync_to_async(make_project)()
    theirs, _ = await sync_to_async(make_project)()
    await sync_to_async(make_run)(mine)
    for _ in range(3):
        await sync_to_async(make_run)(theirs)
    cookie = await _session_cookie(mine)
    communicator = await _connect("/ws/runs/?page=home", cookie)
    message = await communicator.receive_from(timeout=5)
    assert 'id="counters"' in message
    runs = re.search(r'counter-value">(\d+)</span><span class="counter-label">runs<', message)
    assert runs is not None
    assert runs.group(1) == "1"
    await communicator.disconnect()
