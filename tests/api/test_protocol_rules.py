"""The API's shared rules, each in one place: read parameters (HTTP and WebSocket), the error
body (HTTP, SSE, WebSocket) and the route prefixes (from the URLconf)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest
from django.http import QueryDict

from apps.api import urls
from apps.api.errors import error_body, error_json, error_response
from apps.api.lean import route_path
from apps.api.protocol import Query, read_params
from streamdash.core.errors import DomainError, Gone
from streamdash.handlers import is_stream_url


def _both(query: str) -> list[Query]:
    """The same query string as Django's QueryDict and as a WebSocket scope's parse_qs."""
    return [QueryDict(query), parse_qs(query, keep_blank_values=True)]


@pytest.mark.parametrize("form", [0, 1])
def test_read_params_are_one_parser_for_http_and_websocket(form: int) -> None:
    query = _both("start_index=5&timeout=2.5")[form]
    params = read_params(query)
    assert params.start_index(tail=100) == 5
    assert params.start_index(tail=3) == 3  # never past the tail
    assert params.idle_timeout == 2.5
    resumed = read_params(query, last_event_id="0000000000000000_0000000000000009")
    assert resumed.start_index(tail=100) == 9


@pytest.mark.parametrize("form", [0, 1])
@pytest.mark.parametrize(
    "query",
    [
        "timeout=86401",  # capped, for WebSocket readers too
        "timeout=0",
        "timeout=nan",
        "start_index=²",
        "start_index=" + "9" * 5000,
        "start_index=-1",
        "offset=abc",
        "offset=-1&offset=now",
        "live=websocket&offset=-1",
    ],
)
def test_read_params_refuse_bad_input_the_same_way(form: int, query: str) -> None:
    with pytest.raises(DomainError) as refused:
        read_params(_both(query)[form])
    assert refused.value.status == 400


def test_error_body_is_the_one_shape() -> None:
    exc = Gone("Gone.", earliest_index=4)
    assert error_body(exc) == {"code": "gone", "message": "Gone.", "earliest_index": 4}
    assert json.loads(error_json(exc)) == error_body(exc)
    response = error_response(exc)
    assert response.status_code == 410
    assert json.loads(response.content) == {"error": error_body(exc)}
    assert isinstance(exc, DomainError)


def test_route_prefixes_come_from_the_urlconf() -> None:
    assert urls.PREFIXES == ("/api/", "/ds/")
    streams = {"/ds/v1/stream/a/b", "/api/v1/runs/r/streams/ai", "/api/v1/runs/r/subscribe"}
    others = {"/api/v1/runs", "/api/v1/runs/r", "/api/v1/runs/r/streams", "/api/v1/tokens", "/"}
    for path in streams:
        assert is_stream_url({"type": "http", "path": path})
    for path in others:
        assert not is_stream_url({"type": "http", "path": path})


def test_route_path_takes_root_path_off_like_django() -> None:
    # A client-sent Daphne-Root-Path must not move a stream URL out of the API's handler.
    scope = {"type": "http", "path": "/x/api/v1/runs/r/streams/ai", "root_path": "/x"}
    assert route_path(scope) == "/api/v1/runs/r/streams/ai"
    assert is_stream_url(scope)


@pytest.mark.django_db
def test_unknown_api_routes_answer_in_the_json_error_shape(client) -> None:
    for path in ("/api/v1/nope", "/ds/v2/stream/x", "/api/v1/runs/r/streams/a/b"):
        response = client.get(path)
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "not_found"
    assert client.get("/no-such-page/").status_code == 404  # the site keeps its own page


def test_subscribe_positions_are_matched_whole() -> None:
    from apps.api.subscribe_views import parse_positions

    assert parse_positions("ai=3,progress=0") == {"ai": 3, "progress": 0}
    for bad in ("ai=3\n", "ai=٣", "ai=²"):
        with pytest.raises(DomainError):
            parse_positions(bad)


def test_a_database_away_is_a_503_whichever_driver_layer_raised_it() -> None:
    import psycopg
    from django.db import OperationalError

    from apps.api.errors import unexpected_error

    for exc in (psycopg.OperationalError("server closed"), OperationalError("gone")):
        answer = unexpected_error("POST /ds/v1/stream/x", exc)
        assert answer.status == 503
        assert answer.code == "unavailable"
        assert answer.headers["Retry-After"]
