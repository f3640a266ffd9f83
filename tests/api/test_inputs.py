"""Input streams over HTTP: ``/api/v1/runs/<run>/inputs/<name>`` (send, idempotent resend, 409
once the run is final, schema validation), the run's ``waiting_for`` mark, and the browser
token scope ``write:inputs:<run>``, which sends inputs and does nothing else."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.projects.models import Project
from apps.projects.tokens import token_mint
from apps.runs.services import run_create, run_update
from apps.streams.definitions import definition_put
from apps.streams.models import Chunk, Stream

JSON = "application/json"


@pytest.fixture
def run_id(project: Project) -> str:
    run = run_create(project=project, task_id="t")
    run_update(project=project, run_id=run.id, status="executing")
    return run.id


def send(client: Client, run_id: str, value: object, *, name: str = "approval", **headers: str):
    return client.post(
        f"/api/v1/runs/{run_id}/inputs/{name}",
        json.dumps([value]),
        content_type=JSON,
        headers=headers,
    )


def producer(producer_id: str, seq: int = 0) -> dict[str, str]:
    return {"Producer-Id": producer_id, "Producer-Epoch": "0", "Producer-Seq": str(seq)}


def stored(run_id: str, name: str = "approval") -> list[object]:
    stream = Stream.objects.get(run_id=run_id, key=f"input:{name}")
    chunks = Chunk.objects.filter(stream=stream).order_by("index")
    return [json.loads(bytes(c.data)) for c in chunks]


def error_code(response) -> str:
    assert response["Content-Type"] == JSON
    return str(response.json()["error"]["code"])


def test_inputs_first_send_creates_the_input_stream(api: Client, run_id: str) -> None:
    response = send(api, run_id, {"ok": True}, **producer("browser-1"))
    assert response.status_code == 200
    assert response["Stream-Start-Index"] == "0"
    assert stored(run_id) == [{"ok": True}]
    # Inputs are streams: listed with the run's streams, readable at both URLs.
    keys = [s["key"] for s in api.get(f"/api/v1/runs/{run_id}/streams").json()["data"]]
    assert keys == ["input:approval"]
    assert api.get(f"/api/v1/runs/{run_id}/inputs/approval?offset=-1").json() == [{"ok": True}]
    assert api.get(f"/api/v1/runs/{run_id}/streams/input:approval?offset=-1").json() == [
        {"ok": True}
    ]


def test_inputs_resend_with_the_same_producer_seq_is_stored_once(api: Client, run_id: str) -> None:
    assert send(api, run_id, "yes", **producer("p-1")).status_code == 200
    again = send(api, run_id, "yes", **producer("p-1"))
    assert again.status_code == 204
    assert again["Stream-Start-Index"] == "0"
    assert send(api, run_id, "more", **producer("p-1", seq=1)).status_code == 200
    assert stored(run_id) == ["yes", "more"]


def test_inputs_refused_with_409_once_the_run_is_finished(
    api: Client, project: Project, run_id: str
) -> None:
    assert send(api, run_id, 1, name="early", **producer("p-1")).status_code == 200
    run_update(project=project, run_id=run_id, status="completed")
    late = send(api, run_id, 2, name="early", **producer("p-2"))
    assert (late.status_code, error_code(late)) == (409, "run_finished")
    never = send(api, run_id, 3, name="never")  # an input the run never had
    assert (never.status_code, error_code(never)) == (409, "run_finished")
    # A resend of what was stored before the end answers as the first send did.
    assert send(api, run_id, 1, name="early", **producer("p-1")).status_code == 204
    assert stored(run_id, "early") == [1]


def test_inputs_validated_when_the_definition_asks(
    api: Client, project: Project, run_id: str
) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    definition, _ = definition_put(project=project, stream_id="input:approval", schema=schema)
    definition.validate = True
    definition.save()
    bad = send(api, run_id, {"ok": "maybe"})
    assert (bad.status_code, error_code(bad)) == (400, "schema_violation")
    assert send(api, run_id, {"ok": False}).status_code == 204
    assert stored(run_id) == [{"ok": False}]


@pytest.mark.parametrize(
    ("name", "content_type", "status", "code"),
    [
        ("approval", "text/plain", 400, "bad_request"),
        ("a:b", JSON, 400, "bad_request"),
        ("x" * 191, JSON, 400, "bad_request"),
    ],
)
def test_inputs_bad_sends_are_clear_errors(
    api: Client, run_id: str, name: str, content_type: str, status: int, code: str
) -> None:
    response = api.post(f"/api/v1/runs/{run_id}/inputs/{name}", '["x"]', content_type=content_type)
    assert (response.status_code, error_code(response)) == (status, code)
    assert not Stream.objects.filter(run_id=run_id).exists()


def test_inputs_unknown_run_is_404(api: Client) -> None:
    response = send(api, "run_01JZZZZZZZZZZZZZZZZZZZZZZZ", 1)
    assert (response.status_code, error_code(response)) == (404, "not_found")


def test_inputs_waiting_for_is_set_cleared_and_ended_by_the_final_status(
    api: Client, run_id: str
) -> None:
    def patch(body: dict[str, object]):
        return api.patch(f"/api/v1/runs/{run_id}", body, content_type=JSON)

    assert patch({"waiting_for": "approval"}).json()["waiting_for"] == "approval"
    assert api.get(f"/api/v1/runs/{run_id}").json()["waiting_for"] == "approval"
    assert patch({"waiting_for": None}).json()["waiting_for"] is None
    assert patch({"waiting_for": "approval"}).status_code == 200
    assert patch({"status": "completed"}).json()["waiting_for"] is None
    assert patch({"waiting_for": None}).status_code == 200  # nothing to clear: fine
    refused = patch({"waiting_for": "approval"})
    assert (refused.status_code, error_code(refused)) == (409, "conflict")
    bad = patch({"waiting_for": 5})
    assert (bad.status_code, error_code(bad)) == (400, "bad_request")


# --- the browser's token: write:inputs:<run> -------------------------------------------------


@pytest.fixture
def input_token(project: Project, run_id: str) -> Client:
    token = token_mint(project_id=project.pk, scopes=[f"write:inputs:{run_id}"])
    return Client(headers={"Authorization": f"Bearer {token}"})


def test_inputs_token_sends_to_its_runs_inputs(input_token: Client, run_id: str) -> None:
    assert send(input_token, run_id, {"ok": True}, **producer("tab-1")).status_code == 200
    assert send(input_token, run_id, "stop", name="stop").status_code == 204
    assert stored(run_id) == [{"ok": True}]
    assert stored(run_id, "stop") == ["stop"]


def test_inputs_token_cannot_write_outputs_or_another_run(
    api: Client, project: Project, input_token: Client, run_id: str
) -> None:
    api.put(f"/api/v1/runs/{run_id}/streams/ai", b"", content_type=JSON, CONTENT_TYPE=JSON)
    other = run_create(project=project, task_id="t").id
    refusals = [
        input_token.post(f"/api/v1/runs/{run_id}/streams/ai", '["x"]', content_type=JSON),
        input_token.put(f"/api/v1/runs/{run_id}/streams/new", b"", content_type=JSON),
        # The input stream under its stream URL is a stream like any other: "write" needed.
        input_token.post(
            f"/api/v1/runs/{run_id}/streams/input:approval", '["x"]', content_type=JSON
        ),
        send(input_token, other, "x"),
        input_token.patch(f"/api/v1/runs/{run_id}", {"status": "completed"}, content_type=JSON),
        input_token.post("/api/v1/runs", {"task_id": "t"}, content_type=JSON),
    ]
    assert [(r.status_code, error_code(r)) for r in refusals] == [(403, "forbidden")] * 6
    assert not Stream.objects.filter(run_id=other).exists()
    assert api.get(f"/api/v1/runs/{run_id}/streams/ai?offset=-1").json() == []


def test_inputs_token_may_only_append_not_close_delete_or_read(
    input_token: Client, run_id: str
) -> None:
    assert send(input_token, run_id, 1).status_code == 204
    url = f"/api/v1/runs/{run_id}/inputs/approval"
    refusals = [
        input_token.post(url, b"", content_type=JSON, headers={"Stream-Closed": "true"}),
        input_token.delete(url),
        input_token.put(url, b"", content_type=JSON, CONTENT_TYPE=JSON),
        input_token.get(f"{url}?offset=-1"),
    ]
    assert [(r.status_code, error_code(r)) for r in refusals] == [(403, "forbidden")] * 4
    assert stored(run_id) == [1]


def test_inputs_token_is_minted_by_the_tokens_route(api: Client, run_id: str) -> None:
    response = api.post(
        "/api/v1/tokens",
        {"scopes": [f"read:runs:{run_id}", f"write:inputs:{run_id}"]},
        content_type=JSON,
    )
    assert response.status_code == 201
    browser = Client(headers={"Authorization": f"Bearer {response.json()['token']}"})
    assert send(browser, run_id, "go").status_code == 204
    assert browser.get(f"/api/v1/runs/{run_id}/inputs/approval?offset=-1").json() == ["go"]
