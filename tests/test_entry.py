"""The ASGI application's front (``streamdash.entry``): every request gets its id, health
checks come first, other responses are counted and bodies bounded, each path reaches its app."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings
from prometheus_client import REGISTRY

from apps.bench.inprocess import call
from streamdash.core import metrics


def _application() -> Any:
    from streamdash.asgi import application

    return application


async def _call(
    path: str,
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
) -> tuple[int, dict[bytes, bytes], bytes]:
    sent = [(b"host", b"localhost"), *(headers or [])]
    answer = await call(_application(), method, path, sent, body, server=False)
    return answer.status, dict(answer.headers), answer.body


def _responses() -> float:
    return sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "streamdash_responses"
        for sample in family.samples
        if sample.name == "streamdash_responses_total"
    )


@pytest.mark.django_db
async def test_a_health_check_is_answered_first_with_the_request_id() -> None:
    before = _responses()
    status, headers, body = await _call("/healthz", headers=[(b"x-request-id", b"probe-1")])
    assert (status, body) == (200, b'{"status": "ok"}')
    assert headers[b"x-request-id"] == b"probe-1"
    assert _responses() == before  # probes are not counted


@pytest.mark.django_db
async def test_each_path_reaches_its_app_with_an_id_and_is_counted() -> None:
    before = _responses()
    stream = await _call("/api/v1/runs/nope/streams/x")  # the lean path
    api = await _call("/api/v1/runs/nope")  # Django's API handler
    site = await _call("/no-such-page/")  # the site
    for status, headers, _ in (stream, api, site):
        assert status in (401, 404)
        assert len(headers[b"x-request-id"]) == 32
    assert stream[1][b"access-control-allow-origin"] == b"*"  # the lean path's CORS
    if metrics.enabled():
        assert _responses() == before + 3


@pytest.mark.django_db
@override_settings(STREAMDASH_MAX_REQUEST_BYTES=10)
async def test_a_body_over_the_limit_is_refused_on_the_lean_path() -> None:
    status, headers, body = await _call(
        "/api/v1/runs/nope/streams/x", method="POST", body=b"x" * 11
    )
    assert status == 413
    assert b'"code": "too_large"' in body or b"too_large" in body
    assert b"x-request-id" in headers


async def test_a_scope_of_another_type_is_refused() -> None:
    with pytest.raises(ValueError, match="lifespan"):
        await _application()({"type": "lifespan"}, None, None)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("method", ["HEAD", "GET"])
async def test_a_run_id_that_names_no_run_is_a_404_after_the_credential_checks(
    method: str,
) -> None:
    """On the lean path the 404 of a malformed run id is answered on the loop; it still comes
    after authentication (401) and the scope check (403), as on every other path."""
    from asgiref.sync import sync_to_async

    from apps.projects.tokens import token_mint
    from apps.runs.services import run_create
    from tests.factories import make_project

    project, key = await sync_to_async(make_project)()
    run = await sync_to_async(run_create)(project=project, task_id="t", payload={})
    token = token_mint(project_id=project.pk, scopes=[f"read:runs:{run.id}"])
    path = "/api/v1/runs/nope/streams/x"

    def auth(credential: str) -> list[tuple[bytes, bytes]]:
        return [(b"authorization", f"Bearer {credential}".encode())]

    status, _, body = await _call(path, method=method, headers=auth(key))
    assert status == 404
    if method == "GET":
        assert b'"run": "nope"' in body
    assert (await _call(path, method=method))[0] == 401
    assert (await _call(path, method=method, headers=auth(token)))[0] == 403
    ok = await _call(f"/api/v1/runs/{run.id}/streams/x", method=method, headers=auth(token))
    assert ok[0] == 404  # a run that exists, a stream that does not: the query's answer


@pytest.mark.django_db(transaction=True)
async def test_head_on_the_lean_path_answers_as_the_django_view() -> None:
    from asgiref.sync import sync_to_async
    from django.test import Client

    from tests.factories import make_project, make_stream

    project, key = await sync_to_async(make_project)()
    stream = await sync_to_async(make_stream)(project, chunks=[b"{}", b"{}"])
    path = f"/ds/v1/stream/{stream.key}"
    auth = [(b"authorization", f"Bearer {key}".encode())]
    status, headers, body = await _call(path, method="HEAD", headers=auth)
    django = await sync_to_async(Client().head)(path, headers={"Authorization": f"Bearer {key}"})
    assert (status, body) == (django.status_code, b"")
    for name in ("Content-Type", "Stream-Next-Offset", "Cache-Control", "ETag"):
        assert headers.get(name.lower().encode()) == (
            django.headers[name].encode() if name in django.headers else None
        )
    missing = await _call("/ds/v1/stream/no-such-stream", method="HEAD", headers=auth)
    assert missing[0] == 404
