"""Every status code of PROTOCOL.md's table and every error code, on a run's stream URL."""

from __future__ import annotations

import json

import pytest
from django.test import AsyncClient, Client

from apps.projects.models import Project
from apps.runs.services import run_create, run_update
from apps.streams.models import Chunk, Stream
from streamdash.core.offsets import offset_for

JSON = "application/json"


@pytest.fixture
def run_id(project: Project) -> str:
    return run_create(project=project, task_id="t").id


@pytest.fixture
def url(run_id: str) -> str:
    return f"/api/v1/runs/{run_id}/streams/ai"


def put(api: Client, url: str, content_type: str = JSON, body: bytes = b"", **headers: str):
    # The test client drops Content-Type when the body is empty; a real client does not.
    return api.put(url, body, content_type=content_type, headers=headers, CONTENT_TYPE=content_type)


def post(api: Client, url: str, body: bytes | str, content_type: str = JSON, **headers: str):
    return api.post(url, body, content_type=content_type, headers=headers)


def error_code(response) -> str:
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]["code"]


def test_create_is_201_then_200_then_409_on_different_config(api, url):
    first = put(api, url)
    assert first.status_code == 201
    assert first["Location"].endswith(url)
    assert first["Stream-Next-Offset"] == offset_for(0)
    assert put(api, url).status_code == 200
    conflict = put(api, url, content_type="text/plain")
    assert conflict.status_code == 409
    assert error_code(conflict) == "stream_exists"


def test_create_with_ttl_and_expires_at_is_400(api, url):
    response = put(api, url, **{"Stream-TTL": "60", "Stream-Expires-At": "2030-01-01T00:00:00Z"})
    assert response.status_code == 400
    assert error_code(response) == "bad_request"


@pytest.mark.parametrize("ttl", ["abc", "-1", "00060", "1e3", "60.5"])
def test_create_with_bad_ttl_is_400(api, url, ttl):
    assert put(api, url, **{"Stream-TTL": ttl}).status_code == 400


def test_append_then_read_returns_the_chunks_with_indices(api, url):
    put(api, url)
    response = post(api, url, '[{"a": 1}, {"b": 2}]')
    assert response.status_code == 204
    assert response["Stream-Next-Offset"] == offset_for(2)
    assert response["Stream-Next-Index"] == "2"
    read = api.get(url)
    assert read.status_code == 200
    assert json.loads(read.content) == [{"a": 1}, {"b": 2}]
    assert read["Stream-Up-To-Date"] == "true"
    assert read["Stream-Start-Index"] == "0"
    assert "Stream-Closed" not in read


def test_json_chunks_keep_their_exact_bytes(api, url, run_id):
    put(api, url)
    post(api, url, '[1e400, 0.10, {"x" : "é"}]')
    stored = list(Chunk.objects.order_by("index").values_list("data", flat=True))
    assert [bytes(d) for d in stored] == [b"1e400", b"0.10", '{"x" : "é"}'.encode()]


def test_read_from_index_and_offset(api, url):
    put(api, url)
    post(api, url, "[0, 1, 2, 3]")
    assert json.loads(api.get(url, {"start_index": 2}).content) == [2, 3]
    assert json.loads(api.get(url, {"offset": offset_for(3)}).content) == [3]
    now = api.get(url, {"offset": "now"})
    assert json.loads(now.content) == []
    assert now["Stream-Next-Offset"] == offset_for(4)


def test_etag_gives_304(api, url):
    put(api, url)
    post(api, url, "[1]")
    first = api.get(url)
    again = api.get(url, headers={"If-None-Match": first["ETag"]})
    assert again.status_code == 304
    post(api, url, "[2]")
    assert api.get(url, headers={"If-None-Match": first["ETag"]}).status_code == 200


@pytest.mark.parametrize("offset", ["", "abc", "0,1", "../x", "12"])
def test_bad_offset_is_400(api, url, offset):
    put(api, url)
    response = api.get(url, {"offset": offset})
    assert response.status_code == 400
    assert error_code(response) in {"invalid_offset", "bad_request"}


def test_live_without_offset_is_400(api, url):
    put(api, url)
    assert api.get(url, {"live": "sse"}).status_code == 400


def test_append_to_unknown_stream_is_404(api, url):
    response = post(api, url, "[1]")
    assert response.status_code == 404
    assert error_code(response) == "stream_not_found"


def test_append_after_close_is_409_stream_closed(api, url):
    put(api, url)
    close = api.generic("POST", url, headers={"Stream-Closed": "true"})
    assert close.status_code == 204
    assert close["Stream-Closed"] == "true"
    again = api.generic("POST", url, headers={"Stream-Closed": "true"})
    assert again.status_code == 204  # closing is idempotent
    response = post(api, url, "[1]")
    assert response.status_code == 409
    assert error_code(response) == "stream_closed"
    assert response["Stream-Closed"] == "true"
    assert api.head(url)["Stream-Closed"] == "true"


def test_content_type_mismatch_is_409(api, url):
    put(api, url)
    response = post(api, url, "hello", content_type="text/plain")
    assert response.status_code == 409
    assert error_code(response) == "content_type_mismatch"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("", "empty_body"),
        ("[]", "empty_body"),
        ("{bad", "invalid_json"),
        ("[1] [2]", "invalid_json"),
    ],
)
def test_bad_json_bodies_are_400_and_store_nothing(api, url, body, code):
    put(api, url)
    response = post(api, url, body)
    assert response.status_code == 400
    assert error_code(response) == code
    assert Chunk.objects.count() == 0


def test_deeply_nested_json_is_400(api, url):
    put(api, url)
    response = post(api, url, "[" * 5000 + "]" * 5000)
    assert response.status_code == 400
    assert error_code(response) == "invalid_json"


def test_chunk_and_request_limits_are_413(api, url, settings):
    settings.STREAMDASH_MAX_CHUNK_BYTES = 10
    put(api, url)
    response = post(api, url, '["0123456789abc"]')
    assert response.status_code == 413
    assert error_code(response) == "too_large"
    assert response.json()["error"]["limit"] == 10


def test_stream_size_limit_is_413_stream_full(api, url, settings):
    settings.STREAMDASH_MAX_STREAM_BYTES = 20
    put(api, url)
    assert post(api, url, '["0123456789"]').status_code == 204
    response = post(api, url, '["0123456789"]')
    assert response.status_code == 413
    assert error_code(response) == "stream_full"
    assert Stream.objects.get().next_index == 1


def test_producer_new_duplicate_gap_and_stale_epoch(api, url):
    put(api, url)

    def send(epoch: int, seq: int, body: str = "[1]"):
        return post(
            api,
            url,
            body,
            **{"Producer-Id": "w1", "Producer-Epoch": str(epoch), "Producer-Seq": str(seq)},
        )

    first = send(0, 0)
    assert first.status_code == 200
    assert (first["Producer-Epoch"], first["Producer-Seq"]) == ("0", "0")
    assert send(0, 0).status_code == 204  # a retry: stored once
    gap = send(0, 5)
    assert gap.status_code == 409
    assert error_code(gap) == "producer_seq_gap"
    assert (gap["Producer-Expected-Seq"], gap["Producer-Received-Seq"]) == ("1", "5")
    assert gap.json()["error"]["expected_seq"] == 1
    assert send(1, 0).status_code == 200  # a new epoch starts at 0
    stale = send(0, 1)
    assert stale.status_code == 403
    assert error_code(stale) == "stale_producer_epoch"
    assert stale["Producer-Epoch"] == "1"
    assert send(2, 3).status_code == 400  # a new epoch must start at 0
    assert json.loads(api.get(url).content) == [1, 1]


@pytest.mark.parametrize(
    "headers",
    [
        {"Producer-Id": "w"},
        {"Producer-Id": "w", "Producer-Epoch": "0"},
        {"Producer-Id": "", "Producer-Epoch": "0", "Producer-Seq": "0"},
        {"Producer-Id": "w", "Producer-Epoch": "-1", "Producer-Seq": "0"},
        {"Producer-Id": "w", "Producer-Epoch": "0", "Producer-Seq": "1e3"},
    ],
)
def test_bad_producer_headers_are_400(api, url, headers):
    put(api, url)
    assert post(api, url, "[1]", **headers).status_code == 400


def test_stream_seq_must_increase(api, url):
    put(api, url)
    assert post(api, url, "[1]", **{"Stream-Seq": "09"}).status_code == 204
    response = post(api, url, "[1]", **{"Stream-Seq": "09"})
    assert response.status_code == 409
    assert error_code(response) == "stream_seq_conflict"


def test_head_and_delete(api, url):
    put(api, url, **{"Stream-TTL": "3600"})
    head = api.head(url)
    assert head.status_code == 200
    assert head["Stream-TTL"] == "3600"
    assert head["Cache-Control"] == "no-store"
    assert api.delete(url).status_code == 204
    assert api.delete(url).status_code == 404
    assert api.head(url).status_code == 404


def test_read_before_retained_index_is_410_with_earliest_index(api, url):
    put(api, url)
    post(api, url, "[0, 1, 2]")
    Stream.objects.update(first_index=2)
    response = api.get(url, {"start_index": 0})
    assert response.status_code == 410
    assert error_code(response) == "gone"
    assert response.json()["error"]["earliest_index"] == 2


def test_append_to_finished_run_is_409_run_finished(api, url, project, run_id):
    put(api, url)
    run_update(project=project, run_id=run_id, status="completed")
    assert api.head(url)["Stream-Closed"] == "true"  # a final status closes the streams
    other = f"/api/v1/runs/{run_id}/streams/late"
    response = put(api, other)
    assert response.status_code == 409
    assert error_code(response) == "run_finished"


@pytest.mark.django_db(transaction=True)
async def test_ndjson_export(api_key, url):
    # The export reads on the hub's own threads: the data must be committed (transaction=True).
    client = AsyncClient()
    auth = {"Authorization": f"Bearer {api_key}"}
    await client.put(url, b'["x"]', content_type=JSON, headers=auth)
    await client.post(url, '[{"a": 1}, "two"]', content_type=JSON, headers=auth)
    response = await client.get(url, {"format": "ndjson"}, headers=auth)
    assert response.status_code == 200, response.content
    body = b"".join([part async for part in response.streaming_content])
    lines = [json.loads(line) for line in body.splitlines()]
    assert [(line["index"], line["data"]) for line in lines] == [
        (0, "x"),
        (1, {"a": 1}),
        (2, "two"),
    ]


def test_errors_carry_nosniff_and_corp(api, url):
    response = api.get(url)
    assert response.status_code == 404
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cross-Origin-Resource-Policy"] == "cross-origin"


def test_definition_with_validation_rejects_chunks_that_break_its_schema(api, url, project):
    from apps.streams.models import StreamDefinition

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    StreamDefinition.objects.create(project=project, stream_id="ai", schema=schema, validate=True)
    put(api, url)
    assert post(api, url, '[{"n": 1}, {"n": 2}]').status_code == 204
    response = post(api, url, '[{"n": 3}, {"n": "four"}]')
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "schema_violation"
    assert (error["chunk"], error["path"]) == (1, ["n"])
    assert json.loads(api.get(url).content) == [{"n": 1}, {"n": 2}]  # nothing of the bad batch


def test_definition_without_validation_accepts_anything(api, url, project):
    from apps.streams.models import StreamDefinition

    StreamDefinition.objects.create(project=project, stream_id="ai", schema={"type": "integer"})
    put(api, url)
    assert post(api, url, '["text"]').status_code == 204
