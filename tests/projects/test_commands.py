"""`manage.py apikey …`, the project admin, and the deploy checks."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from apps.projects.checks import check_streamdash_deploy
from apps.projects.models import ApiKey, Project
from apps.projects.services import api_key_authenticate
from streamdash.core.errors import Unauthorized
from tests.server import ROOT


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_apikey_create_prints_the_secret_once_and_stores_a_digest(project: Project) -> None:
    secret = run("apikey", "create", project.name, "--name", "ci", "--scopes", "read").strip()
    assert secret.startswith("sd_sk_")
    key = ApiKey.objects.get(project=project, name="ci")
    assert key.scopes == ["read"]
    assert secret not in (key.digest, key.prefix)
    assert key.prefix in secret
    assert api_key_authenticate(secret).pk == key.pk
    listing = run("apikey", "list", project.name)
    assert key.prefix in listing
    assert secret not in listing


@pytest.mark.parametrize("scopes", ["", "read,root", "superuser"])
def test_apikey_create_rejects_unknown_scopes(project: Project, scopes: str) -> None:
    with pytest.raises(CommandError):
        run("apikey", "create", project.name, "--scopes", scopes)


def test_apikey_create_unknown_project(db) -> None:
    with pytest.raises(CommandError):
        run("apikey", "create", "no-such-project")


def test_apikey_revoke_takes_effect_at_once(project: Project) -> None:
    secret = run("apikey", "create", project.name, "--name", "gone").strip()
    key = ApiKey.objects.get(project=project, name="gone")
    assert "Revoked" in run("apikey", "revoke", str(key.pk))
    with pytest.raises(Unauthorized):
        api_key_authenticate(secret)
    assert "revoked" in run("apikey", "list", project.name)


def test_apikey_revoke_unknown_key(db) -> None:
    with pytest.raises(CommandError):
        run("apikey", "revoke", "sd_sk_nothing")


def test_deploy_check_warns_when_public_ds_is_on(settings) -> None:
    settings.STREAMDASH_PUBLIC_DS = False
    assert check_streamdash_deploy() == []
    settings.STREAMDASH_PUBLIC_DS = True
    assert [w.id for w in check_streamdash_deploy()] == ["streamdash.W001"]


def _check_deploy(**env: str) -> subprocess.CompletedProcess[str]:
    unset = {"DEBUG", "STREAMDASH_PUBLIC_DS", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    base = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            **base,
            "DEBUG": "0",
            "SECRET_KEY": "prod-" + "k3y-" * 16,
            "ALLOWED_HOSTS": "streams.example.com",
            "SECURE_SSL_REDIRECT": "1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_deploy_is_clean_with_production_settings() -> None:
    done = _check_deploy()
    assert done.returncode == 0, done.stderr + done.stdout
    assert "no issues" in done.stdout


def test_check_deploy_flags_public_ds() -> None:
    done = _check_deploy(STREAMDASH_PUBLIC_DS="1")
    assert done.returncode != 0
    assert "streamdash.W001" in done.stderr + done.stdout


def test_production_refuses_to_start_without_secret_key() -> None:
    done = _check_deploy(SECRET_KEY="")
    assert done.returncode != 0
    assert "SECRET_KEY" in done.stderr


def test_admin_project_list_shows_storage(admin_client: Client, project: Project) -> None:
    response = admin_client.get("/admin/projects/project/")
    assert response.status_code == 200
    page = response.content.lower()
    assert b"bytes used" in page
    assert b"next expiry" in page


def test_admin_add_key_shows_the_secret_once(admin_client: Client, project: Project) -> None:
    created = admin_client.post(
        "/admin/projects/apikey/add/",
        {"project": project.pk, "name": "from-admin", "scopes": ["read"]},
    )
    # The one-time message is kept in the session, not in a (signed, readable) cookie.
    assert "messages" not in created.cookies
    response = admin_client.get(created["Location"])
    assert response.status_code == 200
    key = ApiKey.objects.get(name="from-admin")
    shown = [str(m) for m in response.context["messages"]]
    secret = next(m.split(": ")[-1] for m in shown if "sd_sk_" in m)
    assert api_key_authenticate(secret).pk == key.pk
    assert key.scopes == ["read"]
    page = admin_client.get(f"/admin/projects/apikey/{key.pk}/change/")
    assert secret.encode() not in page.content
    assert key.digest.encode() not in page.content


def test_admin_requires_staff(db, django_user_model, project: Project) -> None:
    user = django_user_model.objects.create_user("joe", "j@example.com", "pw-123456789")
    client = Client()
    client.force_login(user)
    assert client.get("/admin/projects/project/").status_code == 302
    assert Client().get("/admin/projects/apikey/").status_code == 302
