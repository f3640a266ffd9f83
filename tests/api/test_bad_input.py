"""Bad input on the API routes, from the issue tracker: every refusal is a 4xx in the JSON error
shape of PROTOCOL.md §4 (never a 500, never an HTML page), and nothing is stored that readers
or the other database could not take. Run on SQLite and on PostgreSQL (DATABASE_URL)."""

from __future__ import annotations

import json

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client, RequestFactory

from apps.api.errors import async_api_errors
from apps.projects.models import Project
from apps.runs.services import run_create
from apps.streams.models import Chunk, Stream

JSON = "application/json"


@pytest.fixture
def client(api_key: str) -> Client:
    """The project's API client, answering a view's exception with the 500 a server would send
    instead of raising it into the test."""
    return Client(headers={"Authorization": f"Bearer {api_key}"}, raise_request_exception=False)


@pytest.fixture
def run_id(project: Project) -> str:
    return run_create(project=project, task_id="t").id


@pytest.fixture
def url(run_id: str) -> str:
    return f"/api/v1/runs/{run_id}/streams/ai"


def put(client: Client, url: str, body: bytes = b"", content_type: str = JSON, **headers: str):
    return client.put(
        url, body, content_type=content_type, headers=headers, CONTENT_TYPE=content_type
    )


def post(client: Client, url: str, body: bytes | str, content_type: str = JSON, **headers: str):
    return client.post(url, body, content_type=content_type, headers=headers)


def refused(response, status: int, code: str | None = None) -> dict:
    """The error object of a refusal, after checking its status and shape."""
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    error = json.loads(response.content)["error"]
    assert isinstance(error["message"], str)
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error


# --- 7. chunks per request -----------------------------------------------------------------


def test_append_of_more_chunks_than_the_limit_is_413_and_stores_nothing(client, url, settings):
    settings.STREAMDASH_MAX_CHUNKS_PER_REQUEST = 3
    put(client, url)
    assert post(client, url, "[1,2,3]").status_code == 204
    error = refused(post(client, url, "[1,2,3,4]"), 413, "too_many_chunks")
    assert error["limit"] == 3
    assert Chunk.objects.count() == 3


def test_create_with_more_chunks_than_the_limit_is_413(client, run_id, settings):
    settings.STREAMDASH_MAX_CHUNKS_PER_REQUEST = 2
    refused(put(client, f"/api/v1/runs/{run_id}/streams/x", b"[1,2,3]"), 413, "too_many_chunks")
    assert not Stream.objects.filter(key="x").exists()


# --- 9. JSON streams: NaN and Infinity are not JSON; big numbers are --------------------------


@pytest.mark.parametrize("body", ["[1, NaN]", "Infinity", '[{"a": -Infinity}]'])
def test_json_stream_refuses_nan_and_infinity(client, url, body):
    put(client, url)
    refused(post(client, url, body), 400, "invalid_json")
    refused(put(client, url.replace("/ai", "/other"), body.encode()), 400, "invalid_json")
    assert Chunk.objects.count() == 0


def test_json_stream_keeps_big_numbers_byte_exact(client, url):
    put(client, url)
    numbers = [b"1e400", b"-1E+999", b"1" * 5000]
    assert post(client, url, b"[" + b",".join(numbers) + b"]").status_code == 204
    assert client.get(f"{url}?offset=-1").content == b"[" + b",".join(numbers) + b"]"


def test_schema_checked_stream_refuses_an_integer_python_cannot_read(client, url, project):
    """Stored as-is in a plain JSON stream, but a schema check must read the value."""
    from apps.streams.models import StreamDefinition

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    StreamDefinition.objects.create(project=project, stream_id="ai", schema=schema, validate=True)
    put(client, url)
    error = refused(post(client, url, '[{"n": 1}, {"n": ' + "1" * 5000 + "}]"), 400)
    assert error["code"] == "schema_violation"
    assert error["chunk"] == 1
    assert Chunk.objects.count() == 0


def test_api_json_body_with_an_integer_python_cannot_hold_is_400(client):
    body = b'{"task_id": "t", "payload": ' + b"1" * 5000 + b"}"
    refused(client.post("/api/v1/runs", body, content_type=JSON), 400, "invalid_json")


# --- 9. runs: JSON fields and text that a database cannot store -------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"task_id": "t", "payload": NaN}', "invalid_json"),
        ('{"task_id": "t", "payload": [Infinity]}', "invalid_json"),
        ('{"task_id": "t", "payload": 1e999}', "bad_request"),
        ('{"task_id": "t", "payload": {"a": [-1e999]}}', "bad_request"),
        ('{"task_id": "t", "metadata": {"a": 1e999}}', "bad_request"),
        (r'{"task_id": "t", "payload": "a\u0000b"}', "bad_request"),
        (r'{"task_id": "t", "payload": {"\u0000": 1}}', "bad_request"),
        (r'{"task_id": "t", "metadata": {"k": ["\u0000"]}}', "bad_request"),
        (r'{"task_id": "t\u0000"}', "bad_request"),
        (r'{"task_id": "t", "tags": ["a\u0000"]}', "bad_request"),
    ],
)
def test_run_create_refuses_what_cannot_be_stored(client, project, body, code):
    refused(client.post("/api/v1/runs", body, content_type=JSON), 400, code)
    assert not project.runs.exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"output": 1e999}', "bad_request"),
        ('{"error": {"why": NaN}}', "invalid_json"),
        ('{"error": {"why": [1e999]}}', "bad_request"),
        (r'{"metadata": {"k": "\u0000"}}', "bad_request"),
        (r'{"metadata": {"\u0000": 1}}', "bad_request"),
        (r'{"output": {"text": "\u0000"}}', "bad_request"),
    ],
)
def test_run_update_refuses_what_cannot_be_stored(client, run_id, body, code):
    refused(client.patch(f"/api/v1/runs/{run_id}", body, content_type=JSON), 400, code)
    run = client.get(f"/api/v1/runs/{run_id}").json()
    assert (run["output"], run["error"], run["metadata"]) == (None, None, {})


@pytest.mark.parametrize("run_id", ["run_%00", "%00", "run_01ARZ3NDEKTSV4RRFFQ69G5FA%00"])
def test_run_ids_with_nul_are_not_found(client, run_id):
    refused(client.get(f"/api/v1/runs/{run_id}"), 404, "not_found")
    refused(client.get(f"/api/v1/runs/{run_id}/streams"), 404, "not_found")
    patch = client.patch(f"/api/v1/runs/{run_id}", '{"metadata": {"a": 1}}', content_type=JSON)
    refused(patch, 404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"task_ids": ["t\x00"]},
        {"task_ids": ["t"], "worker": "w\x00"},
    ],
)
def test_claim_refuses_nul(client, body):
    refused(client.post("/api/v1/runs/claim", body, content_type=JSON), 400, "bad_request")


# --- 9. the runs list's query, tokens ----------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "cursor=%00",
        "cursor=garbage",
        "cursor=run_%00",
        "cursor=run_01ARZ3NDEKTSV4RRFFQ69G5FAV%0A",
        "status=%00",
        "task_id=t%00",
        "tag=%00",
        "q=%00",
        "limit=%00",
    ],
)
def test_runs_list_refuses_bad_query_parameters(client, run_id, query):
    refused(client.get(f"/api/v1/runs?{query}"), 400, "bad_request")


def test_runs_list_still_pages_with_the_cursor_it_gave(client, project):
    ids = [run_create(project=project, task_id="t").id for _ in range(3)]
    first = client.get("/api/v1/runs", {"limit": 2}).json()
    rest = client.get("/api/v1/runs", {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [r["id"] for r in rest["data"]] == ids[:1]


@pytest.mark.parametrize("ttl", [10**30, -(10**30), 0, 86401, 1.5, "900", True])
def test_token_ttl_out_of_range_is_400(client, run_id, ttl):
    body = {"scopes": [f"read:runs:{run_id}"], "ttl": ttl}
    refused(client.post("/api/v1/tokens", body, content_type=JSON), 400, "bad_request")


@pytest.mark.parametrize(
    "scope",
    [
        "read:runs:{run}\n",
        "read:streams:{run}/ai\n",
        "write:runs:{run}\x00",
        "read:streams:{run}/ai\x00",
        "read:runs:{run}/",
    ],
)
def test_token_scopes_must_match_whole(client, run_id, scope):
    body = {"scopes": [scope.format(run=run_id)]}
    refused(client.post("/api/v1/tokens", body, content_type=JSON), 400, "bad_request")


# --- 9. stream definitions -----------------------------------------------------------------


@pytest.mark.parametrize("stream_id", ["a%00", "a%0A", "a" * 201])
def test_definition_ids_that_are_not_valid_are_400(client, stream_id):
    refused(client.get(f"/api/v1/definitions/{stream_id}"), 400, "bad_request")
    put_ = client.put(f"/api/v1/definitions/{stream_id}", {}, content_type=JSON)
    refused(put_, 400, "bad_request")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (r'{"description": "a\u0000"}', "bad_request"),
        (r'{"schema": {"description": "\u0000"}}', "bad_request"),
        (r'{"schema": {"properties": {"\u0000": {}}}}', "bad_request"),
        ('{"schema": {"maximum": 1e999}}', "bad_request"),
        ('{"schema": {"maximum": NaN}}', "invalid_json"),
    ],
)
def test_definition_refuses_what_cannot_be_stored(client, project, body, code):
    refused(client.put("/api/v1/definitions/ai", body, content_type=JSON), 400, code)
    assert not project.stream_definitions.exists()


# --- 9. names matched whole: a trailing newline is not part of a valid name ------------------


@pytest.mark.parametrize("key", ["ai%0A", "ai%0D%0A", "ai%00"])
def test_stream_key_with_a_trailing_newline_or_nul_is_400(client, run_id, key):
    error = refused(put(client, f"/api/v1/runs/{run_id}/streams/{key}"), 400, "bad_request")
    assert "not valid" in error["message"]
    assert not Stream.objects.exists()


@pytest.mark.parametrize("name", ["ai%0A", "ai%00"])
def test_standalone_name_with_a_trailing_newline_or_nul_is_not_created(client, name):
    assert put(client, f"/ds/v1/stream/{name}").status_code in (400, 404)
    assert not Stream.objects.exists()


# --- 9. stream headers: TTL, expiry, Stream-Seq, Content-Type, Producer-Id ------------------


@pytest.mark.parametrize("ttl", ["315360001", "320000000000", "999999999999"])
def test_stream_ttl_past_ten_years_is_400(client, url, ttl):
    error = refused(put(client, url, **{"Stream-TTL": ttl}), 400, "bad_request")
    assert "315360000" in error["message"]
    assert not Stream.objects.exists()


def test_stream_ttl_of_ten_years_is_accepted_and_renewed(client, url):
    assert put(client, url, **{"Stream-TTL": "315360000"}).status_code == 201
    assert post(client, url, "[1]").status_code == 204
    assert client.head(url)["Stream-TTL"] == "315360000"


@pytest.mark.parametrize(
    "expires_at",
    [
        "9999-12-31T23:59:59-01:00",  # past year 9999 in UTC
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:59",  # no time zone
        "2030-01-01T00:00:00Z\x00",
    ],
)
def test_stream_expires_at_that_cannot_be_held_is_400(client, url, expires_at):
    refused(put(client, url, **{"Stream-Expires-At": expires_at}), 400, "bad_request")
    assert not Stream.objects.exists()


@pytest.mark.parametrize("expires_at", ["9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59+00:00"])
def test_stream_expires_at_the_last_instant_is_accepted(client, expires_at):
    url = "/ds/v1/stream/edge"
    assert put(client, url, **{"Stream-Expires-At": expires_at}).status_code == 201
    assert put(client, url, **{"Stream-Expires-At": expires_at}).status_code == 200
    assert client.head(url)["Stream-Expires-At"].startswith("9999-12-31T23:59:59")


@pytest.mark.parametrize("seq", ["x" * 201, "a\x00"])
def test_stream_seq_that_cannot_be_stored_is_400(client, url, seq):
    put(client, url)
    refused(post(client, url, "[1]", **{"Stream-Seq": seq}), 400, "bad_request")
    assert Chunk.objects.count() == 0


def test_stream_seq_of_200_characters_is_accepted(client, url):
    put(client, url)
    assert post(client, url, "[1]", **{"Stream-Seq": "x" * 200}).status_code == 204


@pytest.mark.parametrize(
    "content_type", ["application/json; x=" + "a" * 200, "text/plain\x00", "text/plain; a=\x00"]
)
def test_stream_content_type_that_cannot_be_stored_is_400(client, url, content_type):
    refused(put(client, url, content_type=content_type), 400, "bad_request")
    assert not Stream.objects.exists()


def test_producer_id_with_nul_is_400(client, url):
    put(client, url)
    headers = {"Producer-Id": "w\x00", "Producer-Epoch": "0", "Producer-Seq": "0"}
    refused(post(client, url, "[1]", **headers), 400, "bad_request")
    assert Chunk.objects.count() == 0


@pytest.mark.parametrize("method", ["get", "head", "put", "post", "delete"])
def test_stream_url_with_nul_in_the_run_id_is_404(client, method):
    url = "/api/v1/runs/run_%00/streams/x"
    response = (
        getattr(client, method)(url, b"[1]", content_type=JSON)
        if method in ("put", "post")
        else getattr(client, method)(url)
    )
    assert response.status_code == 404
    if method != "head":
        refused(response, 404, "not_found")


# --- errors no view expected: JSON 500, and 503 when the database is away -------------------


def _break_run_get(monkeypatch, exc: Exception) -> None:
    def broken(**kwargs):
        raise exc

    monkeypatch.setattr("apps.runs.services.run_get", broken)


def test_unexpected_exception_is_a_logged_json_500(client, run_id, monkeypatch, caplog):
    _break_run_get(monkeypatch, RuntimeError("secret detail"))
    with caplog.at_level("ERROR", logger="apps.api.errors"):
        response = client.get(f"/api/v1/runs/{run_id}")
    error = refused(response, 500, "internal_error")
    assert "secret detail" not in response.content.decode()
    assert "Retry-After" not in response
    (record,) = [r for r in caplog.records if r.name == "apps.api.errors"]
    assert record.levelname == "ERROR"
    assert record.exc_info is not None
    assert record.exc_info[0] is RuntimeError
    assert f"/api/v1/runs/{run_id}" in record.getMessage()
    assert error["message"]


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(OperationalError("server closed the connection"), id="operational"),
        pytest.param(InterfaceError("connection already closed"), id="interface"),
    ],
)
def test_database_away_is_json_503_with_retry_after(client, run_id, monkeypatch, exc):
    _break_run_get(monkeypatch, exc)
    response = client.get(f"/api/v1/runs/{run_id}")
    error = refused(response, 503, "unavailable")
    assert int(response["Retry-After"]) > 0
    assert error["retry_after"] == int(response["Retry-After"])


async def test_async_views_get_the_same_answers(caplog):
    @async_api_errors
    async def view(request, exc):
        raise exc

    request = RequestFactory().get("/api/v1/runs/x/subscribe")
    with caplog.at_level("ERROR", logger="apps.api.errors"):
        crashed = await view(request, KeyError("k"))
    refused(crashed, 500, "internal_error")
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)
    away = await view(request, OperationalError("database is locked"))
    refused(away, 503, "unavailable")
    assert "Retry-After" in away


def test_a_body_past_djangos_own_limit_is_json_413(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    body = '{"task_id": "' + "t" * 100 + '"}'
    refused(client.post("/api/v1/runs", body, content_type=JSON), 413, "too_large")


@pytest.mark.parametrize(
    "body",
    [
        r'{"task_id": "t\ud800"}',
        r'{"task_id": "t", "payload": "\udc00"}',
        r'{"task_id": "t", "metadata": {"\ud83d": 1}}',
        r'{"task_id": "t", "tags": ["\ud83d"]}',
    ],
)
def test_run_create_refuses_lone_surrogates(client, project, body):
    """``\ud800`` alone is valid JSON text but no Unicode: neither UTF-8 nor jsonb takes it."""
    refused(client.post("/api/v1/runs", body, content_type=JSON), 400, "bad_request")
    assert not project.runs.exists()


def test_run_create_keeps_surrogate_pairs(client):
    response = client.post(
        "/api/v1/runs", r'{"task_id": "t", "payload": "\ud83d\ude00"}', content_type=JSON
    )
    assert response.status_code == 201
    assert response.json()["payload"] == "\U0001f600"


@pytest.mark.parametrize("content_type", ["text/plain\n", "text/plain\r\nX-Evil: 1", "text/é"])
def test_stream_content_type_must_be_printable_ascii(client, url, content_type):
    """The type is echoed in every read's Content-Type: a control character there cannot be
    sent (Django refuses the header: a 500), and RFC 9110 media types are ASCII tokens."""
    refused(put(client, url, content_type=content_type), 400, "bad_request")
    assert not Stream.objects.exists()


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("delete", "/api/v1/runs", "GET, POST"),
        ("put", "/api/v1/runs/{run}", "GET, PATCH"),
        ("post", "/api/v1/runs/{run}/streams", "GET"),
        ("get", "/api/v1/tokens", "POST"),
        ("delete", "/api/v1/definitions/ai", "GET, PUT"),
        ("get", "/api/v1/runs/claim", "POST"),
        ("post", "/api/v1/runs/statuses", "GET"),
    ],
)
def test_a_method_a_route_does_not_take_is_a_json_405(client, run_id, method, path, allow):
    response = getattr(client, method)(path.format(run=run_id))
    error = refused(response, 405, "method_not_allowed")
    assert response["Allow"] == allow
    assert method.upper() in error["message"]
