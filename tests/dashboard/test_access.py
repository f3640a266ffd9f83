"""Per-project access in the dashboard: a user sees the runs and streams of their projects
only (staff see all); another project's run, stream, chunk, export or chart is a 404, exactly
like a missing one. The sockets' side is in test_consumers.py."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.projects.models import Project
from apps.runs.models import Run
from apps.streams.models import Stream
from tests.dashboard.test_views import _body
from tests.factories import make_project, make_run, make_stream

# The export reads on the hub's own threads, which see committed rows only.
pytestmark = pytest.mark.django_db(transaction=True)

SECRET = b'{"text": "other-project-secret"}'


@pytest.fixture
def other() -> tuple[Run, Stream]:
    """A run of a project the ``dash`` user is not a member of, with a chunk in its stream."""
    project, _ = make_project("someone-elses")
    run = make_run(project, task_id="their-task")
    return run, make_stream(project, "ai", run=run, chunks=[SECRET, b'"more"'])


def _pages(run: Run, stream: Stream) -> list[str]:
    s = stream.pk
    return [
        f"/runs/{run.id}/",
        f"/runs/{run.id}/streams/ai/",
        f"/runs/{run.id}/streams/ai/?view=history",
        f"/streams/{s}/",
        f"/streams/{s}/?from=0&speed=instant",
        f"/streams/{s}/history/",
        f"/streams/{s}/history/?q=secret",
        f"/streams/{s}/history/?index=1",
        f"/streams/{s}/chart/",
        f"/streams/{s}/chunks/0/",
        f"/streams/{s}/chunks/0/?full=1",
        f"/streams/{s}/chunks/0/raw",
        f"/streams/{s}/export.ndjson",
        f"/streams/{s}/export.raw",
    ]


def _logged_in(username: str, **fields: bool) -> Client:
    client = Client()
    client.force_login(
        get_user_model().objects.create_user(username, password="pw-123456789", **fields)
    )
    return client


def test_another_projects_run_stream_and_chunks_are_404(dash: Client, other) -> None:
    for path in _pages(*other):
        response = dash.get(path)
        assert response.status_code == 404, path
        assert b"other-project-secret" not in response.content, path


def test_a_missing_run_or_stream_looks_the_same(dash: Client, other) -> None:
    """Nothing tells another project's stream from one that does not exist."""
    run, stream = other
    missing = [
        path.replace(run.id, "run_01NOSUCHRUN").replace(f"/{stream.pk}/", "/999999/")
        for path in _pages(run, stream)
    ]
    for theirs, nowhere in zip(_pages(run, stream), missing, strict=True):
        assert dash.get(theirs).content == dash.get(nowhere).content, theirs


@pytest.mark.parametrize("fields", [{"is_staff": True}, {"is_superuser": True}])
def test_staff_open_every_projects_pages(other, fields: dict[str, bool]) -> None:
    staff = _logged_in("staff", **fields)
    for path in _pages(*other):
        response = staff.get(path)
        assert response.status_code in (200, 302), path  # /runs/<run>/streams/<key>/ redirects
    assert SECRET in staff.get(f"/streams/{other[1].pk}/chunks/0/raw").content


def test_a_member_opens_their_projects_pages(dash: Client, user, other) -> None:
    run, stream = other
    run.project.members.add(user)  # applies to the very next request
    for path in _pages(run, stream):
        assert dash.get(path).status_code in (200, 302), path
    assert "other-project-secret" in _body(dash.get(f"/streams/{stream.pk}/export.ndjson"))


def test_lists_and_counters_show_only_the_users_projects(
    dash: Client, project: Project, other
) -> None:
    mine = make_run(project, task_id="my-task")
    make_stream(project, "ai", run=mine, chunks=[b"1"])
    home = dash.get("/")
    assert [r.id for r, _ in home.context["rows"]] == [mine.id]
    totals = home.context["totals"]
    assert (totals.runs, totals.streams, totals.chunks, totals.bytes) == (1, 1, 1, 1)
    assert "their-task" not in home.content.decode()
    runs = dash.get("/runs/")
    assert [r.id for r, _ in runs.context["rows"]] == [mine.id]
    table = dash.get("/runs/", headers={"HX-Request": "true", "HX-Target": "runs-table"})
    assert other[0].id not in table.content.decode()
    for query in ({"task": "their-task"}, {"q": other[0].id}):
        assert dash.get("/runs/", query).context["rows"] == []
    streams = dash.get("/streams/")
    assert [s.pk for s in streams.context["streams"]] == [mine.streams.get().pk]


def test_staff_lists_and_counters_show_every_project(project: Project, other) -> None:
    make_run(project)
    staff = _logged_in("staff", is_staff=True)
    home = staff.get("/")
    assert {r.id for r, _ in home.context["rows"]} >= {other[0].id}
    assert home.context["totals"].runs == 2
    assert len(staff.get("/streams/").context["streams"]) == 1  # only `other` has a stream


def test_a_user_without_projects_sees_an_empty_dashboard(other) -> None:
    nobody = _logged_in("nobody")
    home = nobody.get("/")
    assert home.status_code == 200
    assert home.context["rows"] == []
    assert home.context["totals"].runs == 0
    assert nobody.get("/runs/").context["rows"] == []
    assert nobody.get("/streams/").context["streams"] == []
