"""Forks on the wire (the Durable Streams "Fork" headers), on standalone and run stream URLs:
what a client of "regenerate from here" relies on. The conformance suite covers the rest."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.projects.models import Project
from apps.runs.services import run_create
from apps.streams.models import Chunk, Stream
from streamdash.core.offsets import offset_for

JSON = "application/json"
FROM, AT, SUB = "Stream-Forked-From", "Stream-Fork-Offset", "Stream-Fork-Sub-Offset"


def put(api: Client, url: str, body: bytes = b"", content_type: str | None = JSON, **headers):
    extra = {"CONTENT_TYPE": content_type} if content_type is not None else {}
    return api.put(url, body, headers=headers, **extra)


def post(api: Client, url: str, body: str, content_type: str = JSON):
    return api.post(url, body, content_type=content_type)


def read(api: Client, url: str, offset: str = "-1"):
    response = api.get(f"{url}?offset={offset}")
    assert response.status_code == 200, response.content
    return response


def error_code(response) -> str:
    return response.json()["error"]["code"]


@pytest.fixture
def source(api: Client) -> str:
    url = "/ds/v1/stream/answer"
    assert put(api, url, b'[{"t": "a"}, {"t": "b"}, {"t": "c"}]').status_code == 201
    return url


def test_fork_at_an_index_reads_the_prefix_then_its_own_appends(api, source):
    created = put(api, "/ds/v1/stream/retry", **{FROM: "/v1/stream/answer", AT: offset_for(2)})
    assert created.status_code == 201
    assert created["Stream-Next-Offset"] == offset_for(2)
    assert FROM not in created
    assert post(api, "/ds/v1/stream/retry", '[{"t": "B"}]').status_code == 204
    response = read(api, "/ds/v1/stream/retry")
    assert json.loads(response.content) == [{"t": "a"}, {"t": "b"}, {"t": "B"}]
    assert response["Stream-Next-Index"] == "3"
    # Offsets continue from the fork point: a reader resumes anywhere across the boundary.
    assert json.loads(read(api, "/ds/v1/stream/retry", offset_for(1)).content) == [
        {"t": "b"},
        {"t": "B"},
    ]


def test_a_fork_holds_no_copy_of_the_prefix(api, source):
    put(api, "/ds/v1/stream/retry", **{FROM: source})
    fork = Stream.objects.get(key="retry")
    assert fork.fork_index == 3
    assert not Chunk.objects.filter(stream=fork).exists()


def test_source_appends_after_the_fork_point_are_not_in_the_fork(api, source):
    put(api, "/ds/v1/stream/retry", **{FROM: source, AT: offset_for(1)})
    post(api, source, '[{"t": "d"}]')
    post(api, "/ds/v1/stream/retry", '[{"t": "x"}]')
    assert json.loads(read(api, "/ds/v1/stream/retry").content) == [{"t": "a"}, {"t": "x"}]
    assert len(json.loads(read(api, source).content)) == 4


def test_fork_of_a_missing_stream_is_404(api):
    response = put(api, "/ds/v1/stream/retry", **{FROM: "/v1/stream/nothing"})
    assert response.status_code == 404
    assert error_code(response) == "stream_not_found"


def test_fork_past_the_tail_is_400(api, source):
    response = put(api, "/ds/v1/stream/retry", **{FROM: source, AT: offset_for(4)})
    assert response.status_code == 400
    assert response.json()["error"]["next_index"] == 3


@pytest.mark.parametrize(
    "headers",
    [{SUB: "1"}, {AT: offset_for(0), SUB: "01"}, {FROM: "/v1/stream/answer", SUB: "1"}],
)
def test_fork_headers_that_do_not_fit_together_are_400(api, source, headers):
    assert put(api, "/ds/v1/stream/retry", **headers).status_code == 400


def test_fork_with_another_content_type_is_409(api, source):
    response = put(api, "/ds/v1/stream/retry", content_type="text/plain", **{FROM: source})
    assert response.status_code == 409
    assert error_code(response) == "content_type_mismatch"


def test_fork_without_a_content_type_takes_the_sources(api, source):
    response = put(api, "/ds/v1/stream/retry", content_type=None, **{FROM: source})
    assert response.status_code == 201
    assert response["Content-Type"] == JSON


def test_fork_again_with_the_same_point_is_200_and_with_another_409(api, source):
    headers = {FROM: source, AT: offset_for(1)}
    assert put(api, "/ds/v1/stream/retry", **headers).status_code == 201
    assert put(api, "/ds/v1/stream/retry", **headers).status_code == 200
    moved = put(api, "/ds/v1/stream/retry", **{FROM: source, AT: offset_for(2)})
    assert moved.status_code == 409


def test_byte_sub_offset_keeps_part_of_the_chunk(api):
    put(api, "/ds/v1/stream/text", b"hello", content_type="text/plain")
    headers = {FROM: "/v1/stream/text", AT: offset_for(0), SUB: "3"}
    put(api, "/ds/v1/stream/cut", content_type="text/plain", **headers)
    post(api, "/ds/v1/stream/cut", "LO", content_type="text/plain")
    assert read(api, "/ds/v1/stream/cut").content == b"helLO"


def test_deleted_source_answers_410_while_its_fork_reads_on(api, source):
    put(api, "/ds/v1/stream/retry", **{FROM: source, AT: offset_for(2)})
    assert api.delete(source).status_code == 204
    assert api.head(source).status_code == 410
    assert post(api, source, "[1]").status_code == 410
    assert put(api, source).status_code == 409
    assert put(api, "/ds/v1/stream/again", **{FROM: source}).status_code == 409
    assert json.loads(read(api, "/ds/v1/stream/retry").content) == [{"t": "a"}, {"t": "b"}]
    # The source goes for good with its last fork.
    assert api.delete("/ds/v1/stream/retry").status_code == 204
    assert api.head(source).status_code == 404
    assert not Chunk.objects.exists()


def test_fork_inherits_the_sources_ttl(api):
    put(api, "/ds/v1/stream/short", **{"Stream-TTL": "600"})
    put(api, "/ds/v1/stream/retry", **{FROM: "/v1/stream/short"})
    assert api.head("/ds/v1/stream/retry")["Stream-TTL"] == "600"


def test_run_stream_forks_another_runs_stream(api, project: Project):
    first = run_create(project=project, task_id="chat").id
    second = run_create(project=project, task_id="chat").id
    source = f"/api/v1/runs/{first}/streams/ai"
    put(api, source, b'["Hel", "lo", " world"]')
    fork = f"/api/v1/runs/{second}/streams/ai"
    created = put(api, fork, **{FROM: source, AT: offset_for(2)})
    assert created.status_code == 201
    post(api, fork, '[" there"]')
    assert json.loads(read(api, fork).content) == ["Hel", "lo", " there"]
    listed = api.get(f"/api/v1/runs/{second}/streams").json()["data"][0]
    assert listed["forked_from"] == {"run_id": first, "key": "ai", "at_index": 2}


def test_fork_source_path_that_names_no_stream_is_400(api):
    response = put(api, "/ds/v1/stream/retry", **{FROM: "/somewhere/else"})
    assert response.status_code == 400
    assert response.json()["error"]["header"] == FROM


@pytest.mark.django_db(transaction=True)
def test_fork_reads_live_through_the_prefix(api, source):
    # Live reads go through the hub, on its own threads: the data must be committed.
    put(api, "/ds/v1/stream/retry", **{FROM: source, AT: offset_for(2)})
    response = api.get("/ds/v1/stream/retry?offset=-1&live=long-poll")
    assert response.status_code == 200
    assert json.loads(response.content) == [{"t": "a"}, {"t": "b"}]
    assert response["Stream-Next-Offset"] == offset_for(2)


def test_plain_create_of_an_existing_fork_is_200_and_fork_of_a_plain_stream_409(api, source):
    put(api, "/ds/v1/stream/retry", **{FROM: source})
    # A writer that creates its stream before appending (the SDK's) may write to a fork.
    assert put(api, "/ds/v1/stream/retry").status_code == 200
    put(api, "/ds/v1/stream/plain")
    assert put(api, "/ds/v1/stream/plain", **{FROM: source}).status_code == 409
