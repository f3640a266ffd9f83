"""``{% streamdash_stream %}`` renders one escaped element plus the embed module; /examples/."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
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
    client = Client()
    client.force_login(get_user_model().objects.create_user("viewer", password="pw-viewer-1"))
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
