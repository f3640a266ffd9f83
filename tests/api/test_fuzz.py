"""Random requests against the in-process API routes (Django's test client: the same views and
middleware as a server). Whatever the headers, bodies and query parameters: never a 5xx, and
every refusal of a routed URL in the JSON error shape of PROTOCOL.md §4.

Three sweeps (JSON routes, stream URLs, list queries), each bounded: 100 examples, no deadline,
no example database, and no shrinking (each example is a few requests to the database, and a
failure is reported as drawn). The values lean hard on known edges, so that 100 draws meet
them. Live reads (``live``, ``format``) and the run subscription are left out: they hold the
response open."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest
from django.test import Client
from django.urls import Resolver404, resolve
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from apps.api import ratelimit
from apps.projects.models import Project
from apps.runs.services import run_create
from tests.factories import make_stream

JSON = "application/json"

bounded = settings(
    max_examples=100,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Values that broke something once, or sit on an edge.
EDGES = [
    "",
    "\x00",
    "a\x00",
    "\n",
    "NaN",
    "Infinity",
    "1e999",
    "-1",
    "0",
    "now",
    "²",
    "1٣",
    "9" * 5000,
    "x" * 250,
    "999999999999",
    "315360001",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59.999999Z",
    "2030-01-01T00:00:00Z\x00x",
    "true",
    "0000000000000000_0000000000000000",
    "0000000000000000_000000000000000٣",
    "run_01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "application/json",
    "text/plain\n",
]
edge = st.sampled_from(EDGES)
text = st.one_of(edge, edge, st.text(max_size=30))
segment = st.one_of(
    st.sampled_from(["ai", "ai", "x%00", "ai%0A", "%00", "a" * 201]),
    st.text(min_size=1, max_size=20).map(lambda t: quote(t, safe="")),
)
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
    text,
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


def _dumps(value: object) -> bytes:
    """JSON text of a value, with the string "1e999" turned into the number (which Python reads
    as inf and json.dumps cannot write); NaN and Infinity come from json.dumps itself."""
    return json.dumps(value).replace('"1e999"', "1e999").encode()


objects = st.dictionaries(text, json_value, max_size=3)
statuses = st.one_of(st.sampled_from(["executing", "completed", "failed"]), text)
# (method, path) → a body shaped like what the view reads, with hostile values inside.
JSON_ROUTES = {
    ("POST", "/api/v1/runs"): st.fixed_dictionaries(
        {"task_id": text},
        optional={
            "payload": json_value,
            "metadata": objects,
            "tags": st.lists(text, max_size=3),
            "read_token": st.booleans(),
            "parent_id": st.one_of(text, json_value),
        },
    ),
    ("PATCH", "/api/v1/runs/{run}"): st.fixed_dictionaries(
        {},
        optional={
            "status": statuses,
            "metadata": objects,
            "output": json_value,
            "error": json_value,
        },
    ),
    ("POST", "/api/v1/runs/claim"): st.fixed_dictionaries(
        {"task_ids": st.lists(text, min_size=1, max_size=3)}, optional={"worker": text}
    ),
    ("POST", "/api/v1/tokens"): st.fixed_dictionaries(
        {"scopes": st.lists(st.one_of(text, text.map("read:runs:{run}".__add__)), max_size=2)},
        optional={"ttl": st.one_of(st.integers(), st.floats(), text)},
    ),
    ("PUT", "/api/v1/definitions/{key}"): st.fixed_dictionaries(
        {}, optional={"schema": st.one_of(objects, json_value), "description": text}
    ),
}
stream_body = st.one_of(
    st.just(b""),
    st.binary(max_size=64),
    json_value.map(_dumps),
    st.lists(json_value, min_size=1, max_size=4).map(_dumps),
    st.sampled_from([b"[NaN]", b"[1e400, -1e999]", b"1" * 5000, b"[" * 200]),
)
STREAM_HEADERS = [
    "Content-Type",
    "Stream-TTL",
    "Stream-Expires-At",
    "Stream-Closed",
    "Stream-Seq",
    "Producer-Id",
    "Producer-Epoch",
    "Producer-Seq",
    "If-None-Match",
    "Last-Event-ID",
]
stream_headers = st.dictionaries(
    st.sampled_from(STREAM_HEADERS),
    st.one_of(text, st.sampled_from([JSON, "text/plain", "0", "true"])),
    max_size=4,
)
STREAM_URLS = ["/api/v1/runs/{run}/streams/{key}", "/ds/v1/stream/{key}"]
STREAM_METHODS = ["GET", "HEAD", "PUT", "POST", "POST", "DELETE", "PATCH"]
LIST_PARAMS = ["cursor", "limit", "status", "task_id", "tag", "q"]
READ_PARAMS = ["offset", "start_index", "timeout"]


@pytest.fixture
def known(project: Project, api_key: str) -> dict[str, str]:
    """A run and a standalone stream, both ``ai`` with a chunk, so that requests get past the
    lookups; and the key that reaches them."""
    run = run_create(project=project, task_id="t")
    make_stream(project, "ai", run=run, chunks=[b"1"])
    make_stream(project, "ai", chunks=[b"1"])
    return {"run": run.id, "key": api_key}


def _send(known, method, template, *, run="{known}", key="ai", query=None, body=b"", **headers):
    """One request, checked: no 5xx; a refusal of a routed URL is the JSON error shape."""
    ratelimit.buckets.clear()  # the sweep is not a flood
    path = template.format(run=known["run"] if run == "{known}" else run, key=key)
    url = f"{path}?{urlencode(query)}" if query else path
    body = body.replace(b"{run}", known["run"].encode())
    content_type = headers.pop("Content-Type", JSON)
    client = Client(
        headers={"Authorization": f"Bearer {known['key']}"}, raise_request_exception=False
    )
    response = client.generic(
        method, url, body, content_type=content_type, headers=headers, CONTENT_TYPE=content_type
    )
    where = (method, url, headers, content_type, body[:120])
    assert response.status_code < 500, (where, response.content[:300])
    try:
        resolve(response.wsgi_request.path_info)
    except Resolver404:
        return  # no route (a name Django's converters refuse, e.g. one with a newline)
    if response.status_code >= 400 and method != "HEAD":
        assert response["Content-Type"] == JSON, (where, response.content[:300])
        error = json.loads(response.content)["error"]
        assert isinstance(error["code"], str), where
        assert isinstance(error["message"], str), where


@bounded
@given(route=st.sampled_from(sorted(JSON_ROUTES)), run=segment, key=segment, data=st.data())
def test_fuzz_json_routes(known, route, run, key, data) -> None:
    method, template = route
    body = data.draw(st.one_of(JSON_ROUTES[route].map(_dumps), stream_body), label="body")
    run = data.draw(st.one_of(st.just("{known}"), st.just(run)), label="run")
    _send(known, method, template, run=run, key=key, body=body)


@bounded
@given(
    method=st.sampled_from(STREAM_METHODS),
    template=st.sampled_from(STREAM_URLS),
    run=st.one_of(st.just("{known}"), segment),
    key=segment,
    query=st.dictionaries(st.sampled_from(READ_PARAMS), text, max_size=2),
    headers=stream_headers,
    body=stream_body,
)
def test_fuzz_stream_urls(known, method, template, run, key, query, headers, body) -> None:
    _send(known, method, template, run=run, key=key, query=query, body=body, **headers)


@bounded
@given(
    method=st.sampled_from(["GET", "GET", "GET", "HEAD", "PUT", "DELETE", "OPTIONS"]),
    template=st.sampled_from(
        ["/api/v1/runs", "/api/v1/runs/{run}", "/api/v1/runs/{run}/streams", "/api/v1/tokens"]
    ),
    run=st.one_of(st.just("{known}"), segment),
    query=st.dictionaries(st.sampled_from(LIST_PARAMS), text, max_size=3),
)
def test_fuzz_reads(known, method, template, run, query) -> None:
    _send(known, method, template, run=run, query=query)
