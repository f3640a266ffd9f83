"""HTTP and WebSocket hardening, in process: headers, XSS, CSRF, body limits, JSON depth,
rate limits, log redaction, the dashboard socket's Origin check and the token WS route."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from apps.api import ratelimit
from apps.api.bodylimit import RequestBodyLimit
from apps.api.logredact import RedactSecretsFilter, redact, redact_daphne_access_log
from apps.projects.models import Project
from apps.projects.services import api_key_create, api_key_revoke
from apps.projects.tokens import token_mint
from apps.runs.services import run_create
from apps.streams.services import chunks_append, stream_close
from tests.factories import make_project, make_stream

JSON = "application/json"
XSS = [
    b"<script>alert(document.cookie)</script>",
    b'"><img src=x onerror=alert(1)>',
    b"</script><svg/onload=alert(1)>",
    b"javascript:alert(1)//\x00\xff\xfe",
]


@pytest.fixture(autouse=True)
def _fresh_buckets():
    ratelimit.buckets.clear()
    yield
    ratelimit.buckets.clear()


# --- headers and stored XSS ----------------------------------------------------------------


@pytest.mark.parametrize("payload", XSS)
def test_security_xss_chunk_comes_back_byte_exact_and_inert(api: Client, project, payload):
    run = run_create(project=project, task_id="t")
    url = f"/api/v1/runs/{run.id}/streams/page"
    created = api.put(url, b"", content_type="text/html", CONTENT_TYPE="text/html")
    assert created.status_code == 201
    assert api.post(url, payload, content_type="text/html").status_code == 204
    response = api.get(f"{url}?offset=-1")
    assert response.status_code == 200
    assert response.content == payload
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert "default-src 'none'" in response["Content-Security-Policy"]


def test_security_xss_in_json_chunk_is_not_rewritten(api: Client, project) -> None:
    run = run_create(project=project, task_id="t")
    url = f"/api/v1/runs/{run.id}/streams/ai"
    api.put(url, b"", content_type=JSON, CONTENT_TYPE=JSON)
    chunk = b'{"html":"<script>alert(1)</script>","u":"\\u003c/script\\u003e"}'
    assert api.post(url, b"[" + chunk + b"]", content_type=JSON).status_code == 204
    response = api.get(f"{url}?offset=-1")
    assert response.content == b"[" + chunk + b"]"
    assert response["Content-Type"].startswith(JSON)


@pytest.mark.parametrize("path", ["/api/v1/runs", "/ds/v1/stream/x", "/api/v1/nope"])
def test_security_api_errors_carry_nosniff_and_csp(path, db) -> None:
    response = Client().get(path)
    assert response.status_code in (401, 404)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert "Cross-Origin-Resource-Policy" in response


def test_security_site_pages_get_csp_and_frame_deny(db) -> None:
    response = Client().get("/admin/login/")
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Resource-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


# --- CSRF ----------------------------------------------------------------------------------


def test_security_csrf_less_post_to_session_form_is_rejected(db, django_user_model, settings):
    user = django_user_model.objects.create_superuser("root", "r@example.com", "pw-123456789")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/admin/projects/project/add/", {"name": "sneaky"})
    assert response.status_code == 403
    assert not Project.objects.filter(name="sneaky").exists()
    # A forged cross-site login is refused too.
    anonymous = Client(enforce_csrf_checks=True)
    assert anonymous.post("/admin/login/", {"username": "root", "password": "x"}).status_code == 403


# --- bodies: depth, size, lying Content-Length ---------------------------------------------


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_security_deeply_nested_json_is_400(api: Client, project, depth) -> None:
    run = run_create(project=project, task_id="t")
    url = f"/api/v1/runs/{run.id}/streams/ai"
    api.put(url, b"", content_type=JSON, CONTENT_TYPE=JSON)
    body = b"[" + b"[" * depth + b"]" * depth + b"]"
    response = api.post(url, body, content_type=JSON)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    nested_object = b'{"a":' * depth + b"1" + b"}" * depth
    response = api.post("/api/v1/runs", nested_object, content_type=JSON)
    assert response.status_code == 400


def test_security_json_at_the_depth_limit_is_accepted(api: Client, project, settings) -> None:
    run = run_create(project=project, task_id="t")
    url = f"/api/v1/runs/{run.id}/streams/ai"
    api.put(url, b"", content_type=JSON, CONTENT_TYPE=JSON)
    depth = settings.STREAMDASH_MAX_JSON_DEPTH - 1  # inside the array that is flattened
    body = b"[" + b"[" * depth + b"]" * depth + b"]"
    assert api.post(url, body, content_type=JSON).status_code == 204


# The reproduction, scaled up: 65 brackets, then an unterminated string of escaped
# quotes. The old string regex restarted at every quote (4.5 s of CPU at 20 KB, quadratic);
# at 1 MiB it would run for hours. The bound is generous: the linear scan takes milliseconds.
REDOS_BODY = b"[" * 65 + b'"' + b'\\"' * 500_000


def test_security_unterminated_string_body_is_rejected_in_linear_time(api: Client, project):
    run = run_create(project=project, task_id="t")
    url = f"/api/v1/runs/{run.id}/streams/ai"
    api.put(url, b"", content_type=JSON, CONTENT_TYPE=JSON)
    started = time.monotonic()
    response = api.post(url, REDOS_BODY, content_type=JSON)
    assert time.monotonic() - started < 10
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_security_read_only_key_minting_a_token_cannot_stall_the_parser(project) -> None:
    _, secret = api_key_create(project=project, name="reader", scopes=["read"])
    reader = Client(headers={"Authorization": f"Bearer {secret}"})
    body = b'{"scopes": ' + b"[" * 64 + b'"' + b'\\"[' * 300_000
    started = time.monotonic()
    response = reader.post("/api/v1/tokens", body, content_type=JSON)
    assert time.monotonic() - started < 10
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_security_brackets_inside_strings_do_not_count_as_depth(api: Client, project) -> None:
    run = run_create(project=project, task_id="t")
    url = f"/api/v1/runs/{run.id}/streams/ai"
    api.put(url, b"", content_type=JSON, CONTENT_TYPE=JSON)
    body = b'[{"text": "' + b"[{\\\"" * 200 + b'"}]'
    assert api.post(url, body, content_type=JSON).status_code == 204
    assert json.loads(api.get(f"{url}?offset=-1").content) == [{"text": '[{"' * 200}]


async def _asgi(
    messages: list[dict], headers: list[tuple[bytes, bytes]]
) -> tuple[list[dict], list[bytes]]:
    """Run RequestBodyLimit around a fake app that records the body it was given."""
    seen: list[bytes] = []

    async def app(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # what Django's read_body does: RequestAborted, no answer
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    queue = list(messages)
    sent: list[dict] = []

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/v1/runs", "headers": headers}
    await RequestBodyLimit(app)(scope, receive, send)
    return sent, seen


def _chunks(total: int, size: int = 100) -> list[dict]:
    parts = [b"x" * min(size, total - i) for i in range(0, total, size)]
    return [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
        for i, p in enumerate(parts)
    ]


@pytest.mark.parametrize(
    ("total", "headers", "status"),
    [
        (1000, [], 200),  # no Content-Length, within the limit
        (1001, [], 413),  # no Content-Length, one byte over
        (10_000_000, [], 413),  # chunked and huge: stopped at the limit
        (1000, [(b"content-length", b"1000")], 200),
        (10, [(b"content-length", b"2000")], 413),  # declared too large: refused unread
        (500, [(b"content-length", b"100")], 400),  # more bytes than declared
        (50, [(b"content-length", b"100")], 400),  # fewer bytes than declared
        (10, [(b"content-length", b"ten")], 400),
        (10, [(b"content-length", b"-1")], 400),
        (10, [(b"content-length", b"10"), (b"content-length", b"20")], 400),
    ],
)
async def test_security_body_limit_while_reading(settings, total, headers, status) -> None:
    settings.STREAMDASH_MAX_REQUEST_BYTES = 1000
    messages = _chunks(total)
    sent, seen = await _asgi(messages, headers)
    assert sent[0]["status"] == status
    if status == 200:
        assert seen == [b"x" * total]
    else:
        assert seen == []  # the application never got a body
        error = json.loads(sent[1]["body"])["error"]
        assert error["code"] == ("too_large" if status == 413 else "bad_request")


# --- rate limits ---------------------------------------------------------------------------


def test_security_rate_limit_429_with_retry_after(api: Client, settings) -> None:
    settings.STREAMDASH_RATE_LIMIT_PER_SECOND = 0.5
    settings.STREAMDASH_RATE_LIMIT_BURST = 3
    statuses = [
        api.post("/api/v1/runs", {"task_id": "t"}, content_type=JSON).status_code for _ in range(4)
    ]
    assert statuses == [201, 201, 201, 429]
    response = api.post("/api/v1/runs", {"task_id": "t"}, content_type=JSON)
    assert response.status_code == 429
    assert response["Retry-After"] == "2"
    assert response.json()["error"]["code"] == "rate_limited"
    assert response["Access-Control-Allow-Origin"] == "*"  # CORS clients can read it
    # Reads are not limited, and another key has its own bucket.
    assert api.get("/api/v1/runs").status_code == 200
    _, other = make_project()
    other_client = Client(headers={"Authorization": f"Bearer {other}"})
    assert other_client.post("/api/v1/runs", {"task_id": "t"}, content_type=JSON).status_code == 201


def test_security_rate_limit_keyed_by_credential_not_claimed_subject(settings, db) -> None:
    settings.STREAMDASH_RATE_LIMIT_PER_SECOND = 0.1
    settings.STREAMDASH_RATE_LIMIT_BURST = 1
    # Garbage credentials each get their own bucket, so they cannot drain a real key's.
    for n in range(3):
        client = Client(headers={"Authorization": f"Bearer fake-{n}"})
        assert client.post("/api/v1/runs", {}, content_type=JSON).status_code == 401


def test_security_token_bucket_refills() -> None:
    buckets = ratelimit.TokenBuckets()
    assert buckets.take("k", rate=2, burst=2, now=0) == 0
    assert buckets.take("k", rate=2, burst=2, now=0) == 0
    assert buckets.take("k", rate=2, burst=2, now=0) == pytest.approx(0.5)
    assert buckets.take("k", rate=2, burst=2, now=0.5) == 0


def test_security_token_buckets_are_bounded() -> None:
    buckets = ratelimit.TokenBuckets(max_keys=10)
    for n in range(100):
        buckets.take(str(n), rate=1, burst=1, now=0)
    assert len(buckets._state) == 10


# --- secrets never in logs -----------------------------------------------------------------

SECRET_LINES = [
    "GET /api/v1/runs/run_1/streams/ai?live=sse&token=eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.sig HTTP/1.1",
    "GET /ws/v1/runs/run_1/streams/ai?offset=-1&token=abc.def.ghi",
    "Authorization: Bearer sd_sk_Zm9vYmFyYmF6cXV4",
    "headers={'authorization': 'Bearer opaque-token-value'}",
    "HTTP_AUTHORIZATION=Bearer sd_sk_abcdefghijklmnop",
    "key sd_sk_ABCDEFGHIJKLMNOPQRSTUVWXYZ was used",
    # Percent-encoded names: parse_qs reads %74oken as token, so the log must too.
    "GET /ds/v1/stream/x?offset=-1&%74oken=abc.def.ghi HTTP/1.1",
    "GET /ds/v1/stream/x?%54%4F%4B%45%4E=opaque-token-value HTTP/1.1",
]


@pytest.mark.parametrize("line", SECRET_LINES)
def test_security_redact_removes_secrets(line: str) -> None:
    clean = redact(line)
    for secret in ("eyJhbGciOiJIUzI1NiJ9", "abc.def.ghi", "Zm9vYmFy", "opaque-token", "abcdefgh"):
        assert secret not in clean
    assert "ABCDEFGHIJ" not in clean
    assert "[redacted]" in clean


def test_security_padding_does_not_make_a_fresh_rate_limit_bucket() -> None:
    base = ratelimit.rate_key(authorization="Bearer abc.def.ghi", token=None, client="1.2.3.4")
    for variant in ("abc.def.ghi=", "abc.def.ghi==", "abc=.def.ghi"):
        key = ratelimit.rate_key(authorization=f"Bearer {variant}", token=None, client="1.2.3.4")
        assert key == base
        assert ratelimit.rate_key(authorization="", token=variant, client="5.6.7.8") == base


@pytest.mark.parametrize(
    "line",
    ["AUTHOR\u0130ZATION: opaque-token-value", "caf\u00e9 BEARER opaque-token-value"],
)
def test_security_redact_removes_secrets_whatever_the_letter_case(line: str) -> None:
    """``re.I`` takes ``İ`` for ``i``: a line the quick check cannot read still gets the
    patterns."""
    assert "opaque-token" not in redact(line)


def test_security_redact_keeps_ordinary_text() -> None:
    line = "GET /api/v1/runs/run_01ABC/streams/ai?offset=-1&live=sse HTTP/1.1"
    assert redact(line) == line


def test_security_logging_filter_redacts_args_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecretsFilter())
    logger = logging.getLogger("streamdash.test.redact")
    logger.addHandler(handler)
    try:
        logger.warning("request %s failed", "/x?token=s3cr3t-t0ken&offset=1")
        try:
            raise ValueError("bad Authorization: Bearer sd_sk_leakedleakedleaked")
        except ValueError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "s3cr3t" not in text
    assert "leaked" not in text
    assert "offset=1" in text


def test_security_settings_attach_the_filter_to_every_handler(settings) -> None:
    for name, handler in settings.LOGGING["handlers"].items():
        assert "redact_secrets" in handler.get("filters", []), name
    assert settings.LOGGING["loggers"]["django"]["propagate"] is False


def test_security_daphne_access_log_is_redacted() -> None:
    from daphne.access import AccessLogGenerator

    redact_daphne_access_log()
    redact_daphne_access_log()  # idempotent
    stream = io.StringIO()
    AccessLogGenerator(stream)(
        "http",
        "complete",
        {
            "path": "/api/v1/runs/r/streams/ai?live=sse&token=eyJa.eyJb.sig",
            "status": 200,
            "method": "GET",
            "client": "127.0.0.1:5000",
            "time_taken": 0.1,
            "size": 10,
        },
    )
    assert "eyJ" not in stream.getvalue()
    assert "token=[redacted]" in stream.getvalue()


# --- WebSockets ----------------------------------------------------------------------------


def _application():
    from streamdash.asgi import application

    return application


@pytest.mark.django_db
@pytest.mark.parametrize(
    "origin",
    [
        None,
        b"http://evil.example",
        b"null",
        b"http://localhost.evil.example",
        # Same host name, another origin: a page on another port or scheme of this machine.
        b"http://localhost:9999",
        b"https://localhost:8000",
        b"http://127.0.0.1:8000",
    ],
)
async def test_security_dashboard_socket_rejects_missing_or_foreign_origin(origin, settings):
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    headers = [(b"host", b"localhost:8000")] + ([(b"origin", origin)] if origin else [])
    communicator = WebsocketCommunicator(_application(), "/ws/dashboard/", headers=headers)
    connected, _code = await communicator.connect()
    assert connected is False
    await communicator.disconnect()


@pytest.mark.django_db
async def test_security_dashboard_socket_passes_an_allowed_origin(settings) -> None:
    """The validator lets a same-site Origin through to the dashboard's router (which has no
    route for this harmless path, hence the routing error instead of a refusal)."""
    settings.ALLOWED_HOSTS = ["localhost"]
    communicator = WebsocketCommunicator(
        _application(),
        "/ws/no-such-dashboard-route/",
        headers=[(b"host", b"localhost:8000"), (b"origin", b"http://localhost:8000")],
    )
    with pytest.raises(ValueError, match="No route found"):
        await communicator.connect()


@pytest.mark.django_db
async def test_security_dashboard_socket_checks_the_host_and_trusted_origins(settings) -> None:
    settings.ALLOWED_HOSTS = ["localhost"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://dash.example"]
    trusted = WebsocketCommunicator(
        _application(),
        "/ws/no-such-dashboard-route/",
        headers=[(b"host", b"localhost:8000"), (b"origin", b"https://dash.example")],
    )
    with pytest.raises(ValueError, match="No route found"):
        await trusted.connect()
    # A Host outside ALLOWED_HOSTS is refused even when Origin matches it.
    foreign = WebsocketCommunicator(
        _application(),
        "/ws/runs/",
        headers=[(b"host", b"evil.example"), (b"origin", b"http://evil.example")],
    )
    connected, _ = await foreign.connect()
    assert connected is False
    await foreign.disconnect()


@pytest.fixture
def ws_stream(transactional_db):
    project, secret = make_project()
    run = run_create(project=project, task_id="t")
    stream = make_stream(project, "ai", run=run, chunks=[b'{"n":0}', b'"<script>"'])
    return project, run, stream, secret


async def _ws(path: str, headers=None):
    communicator = WebsocketCommunicator(_application(), path, headers=headers or [])
    connected, _ = await communicator.connect()
    assert connected  # accepted; refusals arrive as an error frame and a 44xx close
    return communicator


async def _refused(path: str, status: int, headers=None) -> dict:
    communicator = await _ws(path, headers)
    frame = json.loads(await communicator.receive_from(timeout=5))
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4000 + status}
    await communicator.disconnect()
    assert frame["type"] == "error"
    return frame["error"]


async def test_ws_token_route_streams_chunks_until_close(ws_stream) -> None:
    project, run, stream, _ = ws_stream
    token = await sync_to_async(token_mint)(project_id=project.pk, scopes=[f"read:runs:{run.id}"])
    # Any Origin (or none): the token, not a cookie, is the credential.
    communicator = await _ws(
        f"/ws/v1/runs/{run.id}/streams/ai?token={token}",
        headers=[(b"origin", b"http://elsewhere.example")],
    )
    frame = json.loads(await communicator.receive_from(timeout=5))
    assert frame["type"] == "chunks"
    assert frame["chunks"] == [{"index": 0, "data": {"n": 0}}, {"index": 1, "data": "<script>"}]
    await sync_to_async(chunks_append)(stream_id=stream.pk, chunks=[b"2"])
    await sync_to_async(stream_close)(stream_id=stream.pk)
    frames = []
    while not frames or frames[-1]["type"] != "end":
        frames.append(json.loads(await communicator.receive_from(timeout=5)))
    assert [c["index"] for f in frames if f["type"] == "chunks" for c in f["chunks"]] == [2]
    assert frames[-1] == {"type": "end", "reason": "closed"}
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 1000}


async def test_ws_token_route_accepts_api_key_header_and_start_index(ws_stream) -> None:
    _, run, stream, secret = ws_stream
    await sync_to_async(stream_close)(stream_id=stream.pk)
    communicator = await _ws(
        f"/ws/v1/runs/{run.id}/streams/ai?start_index=1",
        headers=[(b"authorization", f"Bearer {secret}".encode())],
    )
    frame = json.loads(await communicator.receive_from(timeout=5))
    assert [c["index"] for c in frame["chunks"]] == [1]
    await communicator.disconnect()


async def test_ws_route_ends_at_once_when_its_api_key_is_revoked(ws_stream) -> None:
    project, run, _, _ = ws_stream
    key, secret = await sync_to_async(api_key_create)(project=project, name="reader")
    communicator = await _ws(
        f"/ws/v1/runs/{run.id}/streams/ai",
        headers=[(b"authorization", f"Bearer {secret}".encode())],
    )
    assert json.loads(await communicator.receive_from(timeout=5))["type"] == "chunks"
    await sync_to_async(api_key_revoke)(key=key)
    frame = json.loads(await communicator.receive_from(timeout=3))
    assert frame["type"] == "error"
    assert frame["error"]["code"] == "unauthorized"
    assert "revoked" in frame["error"]["message"]
    assert await communicator.receive_output(timeout=3) == {"type": "websocket.close", "code": 4401}


async def test_ws_token_route_closes_when_the_token_expires(ws_stream) -> None:
    project, run, _, _ = ws_stream
    token = await sync_to_async(token_mint)(
        project_id=project.pk, scopes=[f"read:runs:{run.id}"], ttl=dt.timedelta(seconds=2)
    )
    communicator = await _ws(f"/ws/v1/runs/{run.id}/streams/ai?token={token}")
    loop = asyncio.get_running_loop()
    began = loop.time()
    frames = []
    while not frames or frames[-1]["type"] != "end":
        frames.append(json.loads(await communicator.receive_from(timeout=6)))
    assert frames[-1] == {"type": "end", "reason": "token_expired"}
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    assert loop.time() - began < 4


@pytest.mark.parametrize(
    ("credential", "status"),
    [
        ("", 401),
        ("token=not-a-jwt", 401),
        ("token=sd_sk_unknown", 401),
        ("token=eyJhbGciOiJub25lIn0.eyJzdWIiOiJwcm9qZWN0OjEifQ.", 401),
    ],
)
async def test_ws_token_route_refuses_bad_credentials(ws_stream, credential, status) -> None:
    _, run, _, _ = ws_stream
    error = await _refused(f"/ws/v1/runs/{run.id}/streams/ai?{credential}", status)
    assert error["code"] == "unauthorized"


async def test_ws_token_route_refuses_expired_wrong_scope_and_other_project(ws_stream) -> None:
    project, run, _, _ = ws_stream
    other_run = await sync_to_async(run_create)(project=project, task_id="t")
    wrong = await sync_to_async(token_mint)(
        project_id=project.pk, scopes=[f"read:runs:{other_run.id}"]
    )
    await _refused(f"/ws/v1/runs/{run.id}/streams/ai?token={wrong}", 403)
    stream_only = await sync_to_async(token_mint)(
        project_id=project.pk, scopes=[f"read:streams:{run.id}/other"]
    )
    await _refused(f"/ws/v1/runs/{run.id}/streams/ai?token={stream_only}", 403)
    write_only = await sync_to_async(token_mint)(
        project_id=project.pk, scopes=[f"write:runs:{run.id}"]
    )
    await _refused(f"/ws/v1/runs/{run.id}/streams/ai?token={write_only}", 403)
    other_project, _ = await sync_to_async(make_project)()
    foreign = await sync_to_async(token_mint)(
        project_id=other_project.pk, scopes=[f"read:runs:{run.id}"]
    )
    await _refused(f"/ws/v1/runs/{run.id}/streams/ai?token={foreign}", 404)


async def test_ws_token_route_refuses_a_purged_position_with_410(ws_stream) -> None:
    _project, run, stream, secret = ws_stream
    from apps.streams.models import Stream

    await sync_to_async(Stream.objects.filter(pk=stream.pk).update)(first_index=1)
    auth = [(b"authorization", f"Bearer {secret}".encode())]
    error = await _refused(f"/ws/v1/runs/{run.id}/streams/ai?start_index=0", 410, auth)
    assert error["earliest_index"] == 1
    error = await _refused(f"/ws/v1/runs/{run.id}/streams/ai?offset=garbage", 400, auth)
    assert error["code"] == "invalid_offset"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("start_index=%C2%B2", "bad_request"),  # ² is a digit to str.isdigit, not to int()
        ("start_index=1%D9%A3", "bad_request"),  # 1 and an Arabic-Indic 3: \d takes it
        ("start_index=" + "9" * 5000, "bad_request"),  # past int()'s 4300-digit limit
        ("offset=0000000000000000_000000000000000%D9%A3", "invalid_offset"),
    ],
)
async def test_ws_token_route_refuses_a_bad_position_with_4400_not_1011(ws_stream, query, code):
    _project, run, _stream, secret = ws_stream
    auth = [(b"authorization", f"Bearer {secret}".encode())]
    error = await _refused(f"/ws/v1/runs/{run.id}/streams/ai?{query}", 400, auth)
    assert error["code"] == code


@pytest.mark.parametrize("path", ["run_%00/streams/ai", "{run}/streams/a%00"])
async def test_ws_token_route_refuses_a_nul_in_the_url_with_4404_not_1011(ws_stream, path):
    _project, run, _stream, secret = ws_stream
    auth = [(b"authorization", f"Bearer {secret}".encode())]
    error = await _refused(f"/ws/v1/runs/{path.format(run=run.id)}", 404, auth)
    assert error["code"] in ("not_found", "stream_not_found")
