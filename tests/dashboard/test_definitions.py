"""Stream definitions where people look for them: the dashboard and the admin show the name,
the chunk type, the JSON Schema and whether the server validates; stream pages link to theirs
and say where a fork branched."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.streams.definitions import definition_put
from apps.streams.forks import ForkSpec
from apps.streams.models import StreamDefinition
from apps.streams.services import StreamConfig, stream_create
from streamdash.core.offsets import offset_for
from tests.factories import make_project, make_run, make_stream

pytestmark = pytest.mark.django_db

SCHEMA = {
    "title": "Delta",
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
}


def test_definitions_page_shows_each_projects_definitions(dash: Client, project):
    definition_put(project=project, stream_id="ai", schema=SCHEMA, description="LLM deltas")
    definition_put(project=project, stream_id="progress", schema={"type": "integer"})
    other, _ = make_project("elsewhere")
    definition_put(project=other, stream_id="secret", schema=None)
    page = dash.get("/definitions/").content.decode()
    assert f'id="def-{project.pk}-ai"' in page
    for shown in ("Delta", "LLM deltas", "integer"):
        assert shown in page
    # Pretty-printed (one member a line, indented), escaped once.
    assert "\n  &quot;title&quot;: &quot;Delta&quot;" in page
    assert "\n  &quot;type&quot;: &quot;object&quot;" in page
    assert "secret" not in page


def test_definitions_page_says_whether_the_server_validates(dash: Client, project):
    definition_put(project=project, stream_id="ai", schema=SCHEMA)
    StreamDefinition.objects.filter(stream_id="ai").update(validate=True)
    page = dash.get("/definitions/").content.decode()
    assert '<span class="badge badge-open">on</span>' in page


def test_stream_page_links_to_its_definition(dash: Client, project):
    definition_put(project=project, stream_id="ai", schema=SCHEMA)
    stream = make_stream(project, "ai", run=make_run(project))
    for path in (f"/streams/{stream.pk}/", f"/streams/{stream.pk}/history/"):
        page = dash.get(path).content.decode()
        assert f'href="/definitions/#def-{project.pk}-ai"' in page
        assert "ai: Delta" in page


def test_stream_page_says_where_a_fork_branched(dash: Client, project):
    source = make_stream(project, "answer", chunks=[b"1", b"2", b"3"])
    fork, _ = stream_create(
        project=project,
        key="retry",
        config=StreamConfig(content_type="application/json"),
        fork=ForkSpec(None, "answer", offset_for(2)),
    )
    page = dash.get(f"/streams/{fork.pk}/").content.decode()
    assert "forked from" in page
    assert f'href="/streams/{source.pk}/history/?index=2"' in page


@pytest.fixture
def admin_client(db: None) -> Client:
    staff = get_user_model().objects.create_superuser("admin", password="pw-admin-1")
    client = Client()
    client.force_login(staff)
    return client


def test_admin_lists_definitions_with_type_and_validation(admin_client: Client, project):
    definition_put(project=project, stream_id="ai", schema=SCHEMA)
    page = admin_client.get("/admin/streams/streamdefinition/").content.decode()
    assert "Delta" in page
    assert 'name="form-0-validate"' in page  # the switch, editable in the list


def test_admin_shows_the_schema_and_switches_validation(admin_client: Client, project):
    definition, _ = definition_put(project=project, stream_id="ai", schema=SCHEMA)
    url = f"/admin/streams/streamdefinition/{definition.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert '<pre class="schema">{\n  &quot;' in page
    assert "\n  &quot;title&quot;: &quot;Delta&quot;" in page
    assert admin_client.post(url, {"validate": "on"}).status_code == 302
    definition.refresh_from_db()
    assert definition.validate is True
    assert definition.schema == SCHEMA  # read-only: the code owns it
