"""``{% streamdash_stream %}`` renders one escaped element plus the embed module; /examples/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.template import Context, Template, TemplateSyntaxError
from django.test import Client

from tests.factories import make_project, make_run, make_stream

TAG = '{% load streamdash %}{% streamdash_stream run_id "ai" token=token mode=mode %}'


@pytest.fixture(autouse=True)
def plain_static_storage(settings) -> None:
    """Templates use {% static %}; tests run without collectstatic's manifest."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def _render(source: str = TAG, **context: object) -> str:
    values = {"run_id": "run_01ABC", "token": "tok.en", "mode": "text", **context}
    return Template(source).render(Context(values))


def test_streamdash_stream_renders_element_and_module():
    html = _render()
    assert 'data-streamdash-stream=""' in html
    assert 'data-url="/api/v1/runs/run_01ABC/streams/ai"' in html
    assert 'data-token="tok.en"' in html
    assert 'data-mode="text"' in html
    assert html.endswith('<script type="module" src="/static/streamdash/embed.js"></script>')
    assert len(re.findall(r"<script", html)) == 1


def test_streamdash_stream_escapes_every_value():
    evil = '"><script>alert(1)</script>'
    html = _render(run_id=evil, token=evil)
    assert "<script>alert" not in html
    assert len(re.findall(r"<script", html)) == 1  # only the module tag
    # the run id is path-quoted into the URL, the token attribute-escaped
    assert "%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E" in html
    assert 'data-token="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html


def test_streamdash_stream_options_and_list_mode(settings):
    settings.STREAMDASH_BASE_URL = "https://streams.example.com/"
    html = _render(
        '{% load streamdash %}{% streamdash_stream "r1" "progress" token="t" mode="list" '
        'start_index=5 timeout=30 throttle=100 resume="session" id="p" script=False %}'
    )
    assert 'data-url="https://streams.example.com/api/v1/runs/r1/streams/progress"' in html
    for attribute in (
        'data-mode="list"',
        'data-start-index="5"',
        'data-timeout="30"',
        'data-throttle="100"',
        'data-resume="session"',
        'id="p"',
        'class="streamdash-stream streamdash-list"',
    ):
        assert attribute in html
    assert "<script" not in html


def test_streamdash_stream_rejects_unknown_mode():
    with pytest.raises(TemplateSyntaxError, match="mode must be one of text, list"):
        _render(mode="html")


def test_examples_requires_login(db):
    response = Client().get("/examples/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_examples_shows_the_newest_ai_run_with_a_scoped_token(db):
    project, _ = make_project()
    older = make_run(project)
    make_stream(project, "ai", run=older)
    run = make_run(project)
    make_stream(project, "ai", run=run)
    make_stream(project, "progress", run=run)
    make_run(project)  # newest, but without an ai stream
    viewer = get_user_model().objects.create_user("viewer", password="pw-viewer-1")
    project.members.add(viewer)
    client = Client()
    client.force_login(viewer)
    html = client.get("/examples/").content.decode()
    assert f'data-url="/api/v1/runs/{run.id}/streams/ai"' in html
    assert f'data-url="/api/v1/runs/{run.id}/streams/progress"' in html
    token = re.search(r'id="examples" data-run="[^"]+" data-token="([^"]+)"', html)
    assert token is not None

    from apps.projects.tokens import token_verify

    assert token_verify(token.group(1)).scopes == {f"read:runs:{run.id}"}
    assert "/static/streamdash/examples.js" in html


def test_examples_without_runs_says_how_to_get_one(db):
    client = Client()
    client.force_login(get_user_model().objects.create_user("viewer", password="pw-viewer-1"))
    html = client.get("/examples/").content.decode()
    assert "python manage.py demo" in html
    assert "examples.js" not in html


# --- /examples/ per project ------------------------------------------------------------------


def _viewer(username: str = "viewer", **fields: bool) -> tuple[Client, object]:
    user = get_user_model().objects.create_user(username, password="pw-viewer-1", **fields)
    client = Client()
    client.force_login(user)
    return client, user


def _token(html: str) -> str | None:
    found = re.search(r'id="examples" data-run="[^"]+" data-token="([^"]+)"', html)
    return found.group(1) if found else None


def test_examples_mints_no_token_for_another_projects_run(db):
    mine, _ = make_project()
    theirs, _ = make_project()
    run = make_run(theirs)
    make_stream(theirs, "ai", run=run)
    client, user = _viewer()
    mine.members.add(user)
    response = client.get("/examples/", {"run": run.id})
    assert response.status_code == 404
    assert run.id not in response.content.decode()
    # ... exactly as for a run that does not exist
    assert client.get("/examples/", {"run": "run_01NOSUCHRUN"}).status_code == 404
    # Nor does it pick their run as the page's default.
    html = client.get("/examples/").content.decode()
    assert _token(html) is None
    assert "python manage.py demo" in html


def test_examples_staff_get_a_token_for_any_run(db):
    from apps.projects.tokens import token_verify

    project, _ = make_project()
    run = make_run(project)
    make_stream(project, "ai", run=run)
    client, _ = _viewer("staff", is_staff=True)
    token = _token(client.get("/examples/", {"run": run.id}).content.decode())
    assert token is not None
    assert token_verify(token).scopes == {f"read:runs:{run.id}"}


# --- /examples/ with DEBUG=0 static files (the manifest storage) --------------------------------

REACT = ("react.production.min.js", "react-dom.production.min.js")


@pytest.fixture
def collected_static(settings, tmp_path):
    """Static files as production serves them: ``collectstatic`` into a STATIC_ROOT, hashed
    names from the manifest of DEBUG=0's storage. Call it, with an extra static folder or not."""
    settings.STATIC_ROOT = tmp_path / "collected"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

    def collect(extra: Path | None = None) -> None:
        if extra is not None:
            settings.STATICFILES_DIRS = [*settings.STATICFILES_DIRS, extra]
        call_command("collectstatic", interactive=False, verbosity=0, ignore_patterns=["admin"])

    return collect


def _example_page() -> str:
    project, _ = make_project()
    run = make_run(project)
    make_stream(project, "ai", run=run)
    client, user = _viewer()
    project.members.add(user)
    response = client.get("/examples/")
    assert response.status_code == 200
    return response.content.decode()


def test_examples_without_react_vendor_files_degrade_with_debug_off(db, collected_static):
    collected_static()
    html = _example_page()
    assert "/vendor/react" not in html
    assert "React is not loaded on this server" in html
    assert "collectstatic" in html
    # the rest of the page is whole, with hashed static names
    assert re.search(r'src="/static/streamdash/examples\.[0-9a-f]{12}\.js"', html)
    assert 'data-streamdash-stream=""' in html


def test_examples_with_react_vendor_files_load_them_with_debug_off(db, collected_static, tmp_path):
    vendor = tmp_path / "extra" / "streamdash" / "vendor"
    vendor.mkdir(parents=True)
    for name in REACT:
        (vendor / name).write_text("/* React stand-in */\n")
    collected_static(tmp_path / "extra")
    html = _example_page()
    for name in REACT:
        stem = name.removesuffix(".js")
        assert re.search(
            rf'<script src="/static/streamdash/vendor/{stem}\.[0-9a-f]{{12}}\.js">', html
        )
    assert "collectstatic" not in html
