"""Inputs in the dashboard: an input is a stream, so the run page lists it and the live viewer
and history show it, labelled as an input; a task that waits shows "waiting for <name>"."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.runs.services import run_update
from apps.streams.inputs import input_stream_ensure
from apps.streams.services import StreamRef, chunks_append
from tests.factories import make_run, make_stream

pytestmark = pytest.mark.django_db


def test_inputs_run_page_lists_and_labels_inputs_and_the_wait(dash: Client, project) -> None:
    run = make_run(project, task_id="chat")
    run_update(project=project, run_id=run.id, status="executing", waiting_for="approval")
    make_stream(project, "ai", run=run, chunks=[b'"hi"'])
    stream = input_stream_ensure(project=project, run_id=run.id, name="approval")
    chunks_append(
        ref=StreamRef(project_id=project.pk, run_id=run.id, key="input:approval"),
        chunks=[b'{"approved": true}'],
    )
    html = dash.get(f"/runs/{run.id}/").content.decode()
    assert 'class="badge badge-waiting"' in html
    assert "waiting for approval" in html
    assert '<span class="badge badge-input"' in html
    assert f'href="/streams/{stream.pk}/"' in html
    assert "waiting for approval" in dash.get("/runs/").content.decode()

    for path in (f"/streams/{stream.pk}/", f"/streams/{stream.pk}/history/"):
        page = dash.get(path).content.decode()
        assert '<span class="badge badge-input"' in page, path
    assert "approved" in dash.get(f"/streams/{stream.pk}/history/").content.decode()

    run_update(project=project, run_id=run.id, status="completed")
    assert "waiting for" not in dash.get(f"/runs/{run.id}/").content.decode()
