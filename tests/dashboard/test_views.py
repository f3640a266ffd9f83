"""Dashboard pages: login, every page renders, history paging/search/export, untrusted chunks."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from apps.runs.models import Run
from apps.runs.services import run_create, run_update
from tests.factories import make_run, make_stream

pytestmark = pytest.mark.django_db

EVIL = b'{"text": "<script>alert(1)</script><a hx-get=\\"/boom\\" hx-trigger=\\"load\\">x</a>"}'


def _body(response) -> str:
    if response.streaming and response.is_async:

        async def collect() -> bytes:
            return b"".join([part async for part in response.streaming_content])

        return async_to_sync(collect)().decode()
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


@pytest.mark.parametrize(
    "path", ["/", "/runs/", "/streams/", "/streams/1/", "/streams/1/history/", "/runs/run_x/"]
)
def test_pages_require_login(client: Client, path: str):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_login_page_and_login(client: Client, user):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert 'name="password"' in page.content.decode()
    response = client.post(
        "/accounts/login/", {"username": "operator", "password": "pw-operator-1"}
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_logout_is_post(dash: Client):
    assert dash.post("/accounts/logout/").status_code == 302
    assert dash.get("/").status_code == 302


def test_home_counts_and_newest_runs(dash: Client, project):
    run = make_run(project, task_id="summarise")
    make_stream(project, "ai", run=run, chunks=[b'"hello"', b'" world"'])
    response = dash.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "summarise" in html
    assert f'id="run-{run.id}"' in html
    assert 'data-live-socket="/ws/runs/?page=home"' in html
    assert response.context["totals"].chunks == 2
    assert response.context["totals"].active_runs == 1


def test_dashboard_pages_carry_a_strict_csp(dash: Client):
    csp = dash.get("/")["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe" not in csp
    assert "object-src 'none'" in csp


def test_runs_list_filters_and_keyset_pages(dash: Client, project):
    runs = [make_run(project, task_id="a" if i % 2 else "b") for i in range(60)]
    run_update(project=project, run_id=runs[0].id, status="executing")
    first = dash.get("/runs/")
    assert len(first.context["rows"]) == 50
    newest_first = sorted((r.id for r in runs), reverse=True)  # ids are ULIDs
    assert first.context["rows"][0][0].id == newest_first[0]
    second = dash.get("/runs/", {"before": first.context["cursor"]})
    ids = [r.id for r, _ in first.context["rows"]] + [r.id for r, _ in second.context["rows"]]
    assert ids == newest_first
    assert second.context["cursor"] is None
    only_a = dash.get("/runs/", {"task": "a"})
    assert {r.task_id for r, _ in only_a.context["rows"]} == {"a"}
    executing = dash.get("/runs/", {"status": "executing"})
    assert [r.id for r, _ in executing.context["rows"]] == [runs[0].id]
    by_id = dash.get("/runs/", {"q": runs[5].id[-10:]})
    assert [r.id for r, _ in by_id.context["rows"]] == [runs[5].id]


def test_runs_list_htmx_request_gets_only_the_table(dash: Client, project):
    make_run(project)
    response = dash.get("/runs/", headers={"HX-Request": "true", "HX-Target": "runs-table"})
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="runs-table"')
    assert "<html" not in html


def test_run_detail_shows_everything(dash: Client, project):
    run = make_run(project)
    make_stream(project, "progress", run=run, chunks=[b'{"pct": 10}'])
    run_update(project=project, run_id=run.id, status="executing")
    run_update(
        project=project, run_id=run.id, status="completed", output={"answer": 42}, set_output=True
    )
    html = dash.get(f"/runs/{run.id}/").content.decode()
    for text in ("Timeline", "progress", "&quot;answer&quot;: 42", "Completed", "closed"):
        if text == "Timeline":
            assert 'class="timeline"' in html
        else:
            assert text in html
    assert dash.get("/runs/run_missing/").status_code == 404


def test_run_detail_links_parent_root_and_children(dash: Client, project):
    root = make_run(project, "root-task")
    parent = run_create(project=project, task_id="parent-task", parent_id=root.id)
    child = run_create(project=project, task_id="child-task", parent_id=parent.id)
    assert (child.parent_id, child.root_id) == (parent.id, root.id)
    html = dash.get(f"/runs/{parent.id}/").content.decode()
    for related in (root, child):  # the parent's parent is its root: shown once, as parent
        assert f'href="/runs/{related.id}/"' in html
    assert "Root</dt>" not in html
    assert "Children</dt>" in html
    html = dash.get(f"/runs/{child.id}/").content.decode()
    assert f'href="/runs/{root.id}/"' in html
    assert f'href="/runs/{parent.id}/"' in html
    Run.objects.filter(pk=root.id).delete()  # retention removed it: named, no longer linked
    html = dash.get(f"/runs/{child.id}/").content.decode()
    assert root.id in html
    assert f'href="/runs/{root.id}/"' not in html
    # A run with no relatives keeps the card hidden, for its page's socket to fill in.
    alone = dash.get(f"/runs/{make_run(project).id}/").content.decode()
    assert '<section class="card" id="run-family" hidden>' in alone


def test_history_pages_jump_and_last(dash: Client, project):
    stream = make_stream(project, chunks=[json.dumps({"n": i}).encode() for i in range(120)])
    first = dash.get(f"/streams/{stream.pk}/history/")
    assert [r.index for r, _ in first.context["rows"]] == list(range(50))
    jump = dash.get(f"/streams/{stream.pk}/history/", {"index": 60})
    assert jump.context["rows"][0][0].index == 60
    last = dash.get(f"/streams/{stream.pk}/history/", {"start": last_start(stream)})
    assert last.context["rows"][-1][0].index == 119
    assert last.context["next_start"] is None
    clamped = dash.get(f"/streams/{stream.pk}/history/", {"index": 10_000})
    assert clamped.context["rows"][-1][0].index == 119


def last_start(stream) -> int:
    return stream.next_index - 50


def test_history_search_is_bounded_and_continues(dash: Client, project):
    chunks = [json.dumps({"word": "needle" if i % 10 == 3 else "hay"}).encode() for i in range(40)]
    stream = make_stream(project, chunks=chunks)
    response = dash.get(f"/streams/{stream.pk}/history/", {"q": "NEEDLE"})
    assert [r.index for r, _ in response.context["rows"]] == [3, 13, 23, 33]
    assert response.context["search"].scanned_to == 40


def test_chunk_detail_pretty_json_and_hex(dash: Client, project):
    stream = make_stream(project, chunks=[b'{"b":1,"a":[1,2]}'])
    html = dash.get(f"/streams/{stream.pk}/chunks/0/").content.decode()
    assert "&quot;a&quot;: [\n" in html
    binary = make_stream(
        project, content_type="application/octet-stream", chunks=[bytes(range(40))]
    )
    html = dash.get(f"/streams/{binary.pk}/chunks/0/").content.decode()
    assert "00000000  00 01 02 03" in html
    assert dash.get(f"/streams/{binary.pk}/chunks/5/").status_code == 404


def test_big_chunk_is_truncated_with_a_link_to_all_of_it(dash: Client, project):
    big = b'"' + b"x" * (1024 * 1024 - 10) + b'"'
    stream = make_stream(project, chunks=[big])
    response = dash.get(f"/streams/{stream.pk}/chunks/0/")
    html = response.content.decode()
    assert "Truncated" in html
    assert "?full=1" in html
    assert len(html) < 400_000
    full = dash.get(f"/streams/{stream.pk}/chunks/0/", {"full": "1"})
    assert len(full.content) > 1024 * 1024 - 10
    raw = dash.get(f"/streams/{stream.pk}/chunks/0/raw")
    assert raw.content == big
    assert raw["Content-Disposition"].startswith("attachment")
    assert "sandbox" in raw["Content-Security-Policy"]


def test_untrusted_chunk_is_escaped_everywhere(dash: Client, project):
    run = make_run(project)
    stream = make_stream(project, "ai", run=run, chunks=[EVIL])
    for path in (f"/streams/{stream.pk}/history/", f"/streams/{stream.pk}/chunks/0/"):
        html = dash.get(path).content.decode()
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert '<a hx-get="/boom"' not in html
        assert "hx-disable" in html


@pytest.mark.django_db(transaction=True)  # the export reads on the hub's own threads
def test_export_ndjson_and_raw(dash: Client, project, client: Client):
    stream = make_stream(project, chunks=[b'{"n":0}', b'"two"'])
    response = dash.get(f"/streams/{stream.pk}/export.ndjson")
    lines = [json.loads(x) for x in _body(response).splitlines()]
    assert [x["index"] for x in lines] == [0, 1]
    assert lines[0]["data"] == {"n": 0}
    assert lines[1]["data"] == "two"
    raw = dash.get(f"/streams/{stream.pk}/export.raw")
    assert json.loads(_body(raw)) == [{"n": 0}, "two"]
    assert dash.get(f"/streams/{stream.pk}/export.exe").status_code == 404
    assert client.get(f"/streams/{stream.pk}/export.ndjson").status_code == 302


def test_chart_partial_is_inline_svg(dash: Client, project):
    stream = make_stream(project, chunks=[b"1", b"2", b"3"])
    html = dash.get(f"/streams/{stream.pk}/chart/").content.decode()
    assert html.lstrip().startswith('<div id="chart"')
    assert "<svg" in html
    assert "<rect" in html


def test_live_viewer_page_points_its_socket_at_the_resume_index(dash: Client, project):
    stream = make_stream(project, chunks=[b"1"] * 300)
    live = dash.get(f"/streams/{stream.pk}/")
    assert live.context["start"] == 100  # the last 200 chunks, then live
    assert f'data-socket="/ws/streams/{stream.pk}/?from="' in live.content.decode()
    replay = dash.get(f"/streams/{stream.pk}/", {"from": 7, "speed": "10"})
    assert f"/ws/streams/{stream.pk}/?speed=10&amp;from=" in replay.content.decode()
    assert replay.context["start"] == 7
