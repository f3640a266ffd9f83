"""Run routes: create, list (keyset pages, filters), read, update, streams, and their errors."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.runs.services import run_create
from tests.factories import make_project, make_stream


def test_create_read_and_token(api: Client):
    response = api.post(
        "/api/v1/runs",
        {"task_id": "gen", "payload": {"q": 1}, "tags": ["a"], "read_token": True},
        content_type="application/json",
    )
    assert response.status_code == 201
    run = response.json()
    assert run["id"].startswith("run_")
    assert run["status"] == "queued"
    assert run["read_token"].count(".") == 2  # a JWT
    assert api.get(f"/api/v1/runs/{run['id']}").json()["payload"] == {"q": 1}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "bad_request"),
        ({"task_id": 5}, 400, "bad_request"),
        ({"task_id": "x", "tags": "a"}, 400, "bad_request"),
        ({"task_id": "x", "metadata": [1]}, 400, "bad_request"),
    ],
)
def test_create_rejects_bad_input(api: Client, body, status, code):
    response = api.post("/api/v1/runs", body, content_type="application/json")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_create_rejects_non_json(api: Client):
    response = api.post("/api/v1/runs", "task_id=x", content_type="text/plain")
    assert response.status_code == 415


def test_list_is_newest_first_in_keyset_pages(api: Client, project):
    ids = [run_create(project=project, task_id="t").id for _ in range(5)]
    first = api.get("/api/v1/runs", {"limit": 2}).json()
    assert [r["id"] for r in first["data"]] == ids[::-1][:2]
    second = api.get("/api/v1/runs", {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [r["id"] for r in second["data"]] == ids[::-1][2:4]
    last = api.get("/api/v1/runs", {"limit": 2, "cursor": second["next_cursor"]}).json()
    assert [r["id"] for r in last["data"]] == ids[:1]
    assert last["next_cursor"] is None


def test_list_filters(api: Client, project):
    run_create(project=project, task_id="a", tags=["x"])
    b = run_create(project=project, task_id="b")
    assert [r["id"] for r in api.get("/api/v1/runs", {"task_id": "b"}).json()["data"]] == [b.id]
    assert len(api.get("/api/v1/runs", {"status": "queued"}).json()["data"]) == 2
    assert len(api.get("/api/v1/runs", {"status": "completed"}).json()["data"]) == 0


def test_other_projects_runs_are_not_found(api: Client):
    other, _ = make_project()
    foreign = run_create(project=other, task_id="t")
    response = api.get(f"/api/v1/runs/{foreign.id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert api.get(f"/api/v1/runs/{foreign.id}/streams/ai").status_code == 404


def test_lifecycle_transitions_and_final_status_closes_streams(api: Client, project):
    run = run_create(project=project, task_id="t")
    stream = make_stream(project, "ai", run=run)
    url = f"/api/v1/runs/{run.id}"
    patched = api.patch(
        url, {"status": "executing", "metadata": {"step": 1}}, content_type="application/json"
    ).json()
    assert patched["status"] == "executing"
    assert patched["started_at"]
    done = api.patch(
        url, {"status": "completed", "output": {"ok": True}}, content_type="application/json"
    ).json()
    assert done["status"] == "completed"
    assert done["output"] == {"ok": True}
    assert done["expires_at"] is not None
    stream.refresh_from_db()
    assert stream.closed
    again = api.patch(url, {"status": "executing"}, content_type="application/json")
    assert again.status_code == 409
    unknown = api.patch(url, {"status": "paused"}, content_type="application/json")
    assert unknown.status_code == 400


def test_metadata_merges_and_none_removes(api: Client, project):
    run = run_create(project=project, task_id="t", metadata={"a": 1, "b": 2})
    url = f"/api/v1/runs/{run.id}"
    body = api.patch(url, {"metadata": {"b": None, "c": 3}}, content_type="application/json")
    assert body.json()["metadata"] == {"a": 1, "c": 3}


def test_run_streams_lists_counts(api: Client, project):
    run = run_create(project=project, task_id="t")
    make_stream(project, "ai", run=run, chunks=[b"1", b"22"])
    streams = api.get(f"/api/v1/runs/{run.id}/streams").json()["data"]
    assert [(s["key"], s["chunks"], s["bytes"], s["closed"]) for s in streams] == [
        ("ai", 2, 3, False)
    ]


def test_missing_or_bad_credentials_are_401(db):
    client = Client()
    assert client.get("/api/v1/runs").status_code == 401
    bad = Client(headers={"Authorization": "Bearer sd_sk_nope"})
    response = bad.get("/api/v1/runs")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert Client(headers={"Authorization": "Basic abc"}).get("/api/v1/runs").status_code == 401


def test_standalone_streams_need_a_key_unless_public(db, settings):
    settings.STREAMDASH_PUBLIC_DS = False
    assert Client().put("/ds/v1/stream/x", CONTENT_TYPE="text/plain").status_code == 401
    settings.STREAMDASH_PUBLIC_DS = True
    assert Client().put("/ds/v1/stream/x", CONTENT_TYPE="text/plain").status_code == 201


def test_retention_policy_of_the_task_sets_expiry(api: Client, project):
    import datetime as dt

    from apps.retention.models import TaskRetentionPolicy

    TaskRetentionPolicy.objects.create(project=project, task_id="short", retention_days=3)
    short = run_create(project=project, task_id="short")
    other = run_create(project=project, task_id="other")
    expiry = {}
    for run in (short, other):
        body = api.patch(
            f"/api/v1/runs/{run.id}", {"status": "completed"}, content_type="application/json"
        ).json()
        expiry[run.task_id] = dt.datetime.fromisoformat(
            body["expires_at"]
        ) - dt.datetime.fromisoformat(body["finished_at"])
    assert expiry == {"short": dt.timedelta(days=3), "other": dt.timedelta(days=28)}


def test_create_with_parent_records_parent_and_root(api: Client, project):
    root = run_create(project=project, task_id="root")
    assert api.get(f"/api/v1/runs/{root.id}").json()["parent_id"] is None

    def create(parent_id: object) -> dict[str, object]:
        body = {"task_id": "child", "parent_id": parent_id}
        return api.post("/api/v1/runs", body, content_type="application/json").json()

    child = create(root.id)
    grandchild = create(child["id"])
    assert (child["parent_id"], child["root_id"]) == (root.id, root.id)
    assert (grandchild["parent_id"], grandchild["root_id"]) == (child["id"], root.id)
    other = run_create(project=make_project()[0], task_id="theirs")
    for bad in (other.id, "run_missing", 5):
        error = create(bad)["error"]
        assert (error["code"], error["field"]) == ("bad_request", "parent_id")


def test_statuses_of_many_runs_at_once(api: Client, project):
    queued = run_create(project=project, task_id="a")
    canceled = run_create(project=project, task_id="b")
    api.patch(
        f"/api/v1/runs/{canceled.id}", {"status": "canceled"}, content_type="application/json"
    )
    theirs = run_create(project=make_project()[0], task_id="c")
    ids = ",".join([queued.id, canceled.id, theirs.id, "run_missing", "junk"])
    response = api.get("/api/v1/runs/statuses", {"ids": ids})
    assert response.json() == {"statuses": {queued.id: "queued", canceled.id: "canceled"}}
    too_many = ",".join([queued.id] * 501)
    assert api.get("/api/v1/runs/statuses", {"ids": too_many}).status_code == 400
