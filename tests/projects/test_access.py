"""Who may do what: every credential rule of PROTOCOL.md §5, each failing the way it should."""

from __future__ import annotations

import base64
import datetime as dt
import json

import jwt
import pytest
from django.test import Client

from apps.projects import tokens
from apps.projects.models import Project
from apps.projects.services import api_key_create, api_key_revoke
from apps.runs.services import run_create
from tests.factories import make_project, make_stream

JSON = "application/json"


def bearer(secret: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {secret}"})


def code(response) -> str:
    return response.json()["error"]["code"]


@pytest.fixture
def run(project: Project):
    run = run_create(project=project, task_id="t")
    make_stream(project, "ai", run=run, chunks=[b'{"n":0}', b'{"n":1}'])
    return run


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_access_read_only_key_cannot_write(project: Project, run) -> None:
    _key, secret = api_key_create(project=project, scopes=["read"])
    client = bearer(secret)
    assert client.get(f"/api/v1/runs/{run.id}").status_code == 200
    response = client.post("/api/v1/runs", {"task_id": "t"}, content_type=JSON)
    assert response.status_code == 403
    assert code(response) == "forbidden"
    assert response.json()["error"]["needed"] == "write"


def test_access_write_only_key_cannot_read(project: Project, run) -> None:
    _, secret = api_key_create(project=project, scopes=["write"])
    response = bearer(secret).get(f"/api/v1/runs/{run.id}/streams/ai?offset=-1")
    assert response.status_code == 403


def test_access_revoked_key_is_refused_at_once(project: Project, run) -> None:
    key, secret = api_key_create(project=project)
    client = bearer(secret)
    assert client.get(f"/api/v1/runs/{run.id}").status_code == 200
    api_key_revoke(key=key)
    response = client.get(f"/api/v1/runs/{run.id}")
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_access_key_of_another_project_sees_nothing(api: Client, run) -> None:
    _, other_secret = make_project()
    other = bearer(other_secret)
    assert other.get(f"/api/v1/runs/{run.id}").status_code == 404
    assert other.get(f"/api/v1/runs/{run.id}/streams/ai?offset=-1").status_code == 404
    assert other.get("/api/v1/runs").json()["data"] == []
    # ...and cannot mint a token for it either.
    response = other.post("/api/v1/tokens", {"scopes": [f"read:runs:{run.id}"]}, content_type=JSON)
    assert response.status_code == 404


def test_access_token_of_another_project_reads_nothing(run) -> None:
    other, _ = make_project()
    token = tokens.token_mint(project_id=other.pk, scopes=[f"read:runs:{run.id}"])
    assert bearer(token).get(f"/api/v1/runs/{run.id}/streams/ai?offset=-1").status_code == 404


def test_access_token_for_one_run_reads_nothing_else(project: Project, run) -> None:
    other_run = run_create(project=project, task_id="t")
    make_stream(project, "ai", run=other_run, chunks=[b"1"])
    token = tokens.token_mint(project_id=project.pk, scopes=[f"read:runs:{run.id}"])
    client = bearer(token)
    assert client.get(f"/api/v1/runs/{run.id}/streams/ai?offset=-1").status_code == 200
    assert client.get(f"/api/v1/runs/{other_run.id}/streams/ai?offset=-1").status_code == 403
    assert client.get("/api/v1/runs").status_code == 403
    # A read token does not write.
    response = client.post(f"/api/v1/runs/{run.id}/streams/ai", b"[1]", content_type=JSON)
    assert response.status_code == 403


def test_access_stream_token_reads_only_its_stream(project: Project, run) -> None:
    make_stream(project, "progress", run=run, chunks=[b"1"])
    token = tokens.token_mint(project_id=project.pk, scopes=[f"read:streams:{run.id}/ai"])
    client = bearer(token)
    assert client.get(f"/api/v1/runs/{run.id}/streams/ai?offset=-1").status_code == 200
    assert client.get(f"/api/v1/runs/{run.id}/streams/progress?offset=-1").status_code == 403
    assert client.get(f"/api/v1/runs/{run.id}").status_code == 403


def test_access_token_in_query_works_like_the_header(project: Project, run) -> None:
    token = tokens.token_mint(project_id=project.pk, scopes=[f"read:runs:{run.id}"])
    response = Client().get(f"/api/v1/runs/{run.id}/streams/ai?offset=-1&token={token}")
    assert response.status_code == 200


def test_access_expired_token_is_refused(project: Project, run) -> None:
    now = dt.datetime.now(dt.UTC)
    claims = {
        "iss": tokens.ISSUER,
        "aud": tokens.AUDIENCE,
        "sub": f"project:{project.pk}",
        "iat": int((now - dt.timedelta(minutes=20)).timestamp()),
        "exp": int((now - dt.timedelta(minutes=5)).timestamp()),
        "scopes": [f"read:runs:{run.id}"],
    }
    token = jwt.encode(claims, tokens._key(), algorithm="HS256")
    response = bearer(token).get(f"/api/v1/runs/{run.id}/streams/ai?offset=-1")
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_access_tampered_token_is_refused(project: Project, run) -> None:
    other_run = run_create(project=project, task_id="t")
    token = tokens.token_mint(project_id=project.pk, scopes=[f"read:runs:{other_run.id}"])
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scopes"] = [f"read:runs:{run.id}"]  # widen the scope, keep the signature
    forged = f"{header}.{_b64(claims)}.{signature}"
    response = bearer(forged).get(f"/api/v1/runs/{run.id}/streams/ai?offset=-1")
    assert response.status_code == 401
    assert code(response) == "unauthorized"


@pytest.mark.parametrize("alg", ["none", "None", "HS512"])
def test_access_token_with_another_algorithm_is_refused(project: Project, run, alg) -> None:
    claims = {
        "iss": tokens.ISSUER,
        "aud": tokens.AUDIENCE,
        "sub": f"project:{project.pk}",
        "iat": int(dt.datetime.now(dt.UTC).timestamp()),
        "exp": int(dt.datetime.now(dt.UTC).timestamp()) + 600,
        "scopes": [f"read:runs:{run.id}"],
    }
    if alg == "HS512":
        token = jwt.encode(claims, tokens._key(), algorithm="HS512")
    else:
        token = f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(claims)}."
    response = bearer(token).get(f"/api/v1/runs/{run.id}/streams/ai?offset=-1")
    assert response.status_code == 401


@pytest.mark.parametrize(("field", "value"), [("aud", "someone-else"), ("iss", "someone-else")])
def test_access_token_for_another_audience_or_issuer_is_refused(project, run, field, value):
    claims = {
        "iss": tokens.ISSUER,
        "aud": tokens.AUDIENCE,
        "sub": f"project:{project.pk}",
        "iat": int(dt.datetime.now(dt.UTC).timestamp()),
        "exp": int(dt.datetime.now(dt.UTC).timestamp()) + 600,
        "scopes": [f"read:runs:{run.id}"],
        field: value,
    }
    token = jwt.encode(claims, tokens._key(), algorithm="HS256")
    assert bearer(token).get(f"/api/v1/runs/{run.id}").status_code == 401


def test_access_token_signed_with_the_session_key_is_refused(project, run, settings) -> None:
    """The token key is derived with its own salt: SECRET_KEY itself does not sign tokens."""
    claims = {
        "iss": tokens.ISSUER,
        "aud": tokens.AUDIENCE,
        "sub": f"project:{project.pk}",
        "iat": int(dt.datetime.now(dt.UTC).timestamp()),
        "exp": int(dt.datetime.now(dt.UTC).timestamp()) + 600,
        "scopes": [f"read:runs:{run.id}"],
    }
    token = jwt.encode(claims, settings.SECRET_KEY, algorithm="HS256")
    assert bearer(token).get(f"/api/v1/runs/{run.id}").status_code == 401


def test_access_token_without_scopes_grants_nothing(project: Project, run) -> None:
    claims = {
        "iss": tokens.ISSUER,
        "aud": tokens.AUDIENCE,
        "sub": f"project:{project.pk}",
        "iat": int(dt.datetime.now(dt.UTC).timestamp()),
        "exp": int(dt.datetime.now(dt.UTC).timestamp()) + 600,
        "scopes": [],
    }
    token = jwt.encode(claims, tokens._key(), algorithm="HS256")
    client = bearer(token)
    assert client.get(f"/api/v1/runs/{run.id}").status_code == 403
    assert client.get("/api/v1/runs").status_code == 403


def test_access_tokens_are_minted_with_a_key_not_a_token(api: Client, run) -> None:
    minted = api.post("/api/v1/tokens", {"scopes": [f"read:runs:{run.id}"]}, content_type=JSON)
    assert minted.status_code == 201
    assert minted.json()["expires_in"] == 900
    response = bearer(minted.json()["token"]).post(
        "/api/v1/tokens", {"scopes": [f"read:runs:{run.id}"]}, content_type=JSON
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "scopes",
    [[], ["admin"], ["read:runs:*"], ["read:runs:run_x"], "read:runs:x", [1], None],
)
def test_access_mint_rejects_bad_scopes(api: Client, scopes) -> None:
    response = api.post("/api/v1/tokens", {"scopes": scopes}, content_type=JSON)
    assert response.status_code == 400


def test_access_read_key_cannot_mint_write_token(project: Project, run) -> None:
    _, secret = api_key_create(project=project, scopes=["read"])
    response = bearer(secret).post(
        "/api/v1/tokens", {"scopes": [f"write:runs:{run.id}"]}, content_type=JSON
    )
    assert response.status_code == 403


@pytest.mark.parametrize("ttl", [0, -5, 86_401, "60", 1.5, True])
def test_access_mint_rejects_bad_ttl(api: Client, run, ttl) -> None:
    response = api.post(
        "/api/v1/tokens", {"scopes": [f"read:runs:{run.id}"], "ttl": ttl}, content_type=JSON
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "sd_sk_nothing", "Token abc"]
)
def test_access_malformed_authorization_is_401(run, header) -> None:
    response = Client(headers={"Authorization": header}).get(f"/api/v1/runs/{run.id}")
    assert response.status_code == 401


def test_access_unknown_key_is_401(run) -> None:
    assert bearer("sd_sk_" + "x" * 43).get(f"/api/v1/runs/{run.id}").status_code == 401


def test_access_session_cookie_is_not_an_api_credential(run, django_user_model) -> None:
    """A logged-in admin's browser cannot be made to write through the API (no ambient auth,
    hence no CSRF on the csrf_exempt API routes)."""
    user = django_user_model.objects.create_superuser("root", "r@example.com", "pw-123456789")
    client = Client()
    client.force_login(user)
    assert client.get(f"/api/v1/runs/{run.id}").status_code == 401
    assert client.post("/api/v1/runs", {"task_id": "t"}, content_type=JSON).status_code == 401
