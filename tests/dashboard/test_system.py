"""The System page and ``/metrics`` refuse whoever is not allowed: the page is for staff (a
log-in first for the anonymous, a 403 for other users); ``/metrics`` takes the metrics token
or a staff session, and does not exist for anyone else while no token is set."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.dashboard import heartbeat
from tests.factories import make_stream

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db: None) -> Client:
    user = get_user_model().objects.create_user("admin-op", password="pw-admin-1", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


def test_system_page_sends_anonymous_users_to_log_in() -> None:
    response = Client().get("/system/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_system_page_refuses_users_who_are_not_staff(dash: Client) -> None:
    assert dash.get("/system/").status_code == 403


def test_system_page_shows_staff_each_process_storage_and_retention(staff, project) -> None:
    make_stream(project, "ai", chunks=[b'"a"', b'"bc"'])
    heartbeat.beat()  # this process, as a server process reports itself
    response = staff.get("/system/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-pid="{os.getpid()}"' in html
    assert project.name in html
    assert "purges every" in html
    assert "Channel layer" in html
    # htmx polls the partial alone.
    partial = staff.get("/system/", headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<div id="system"')


def test_metrics_do_not_exist_without_a_token_setting(dash: Client, settings) -> None:
    settings.STREAMDASH_METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 404
    assert dash.get("/metrics").status_code == 404
    assert Client(headers={"Authorization": "Bearer "}).get("/metrics").status_code == 404


def test_metrics_refuse_a_missing_or_wrong_token(settings) -> None:
    settings.STREAMDASH_METRICS_TOKEN = "metrics-secret-1"
    missing = Client().get("/metrics")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong = Client(headers={"Authorization": "Bearer metrics-secret-2"}).get("/metrics")
    assert wrong.status_code == 401
    right = Client(headers={"Authorization": "Bearer metrics-secret-1"}).get("/metrics")
    assert right.status_code == 200
    assert b"streamdash_append_requests_total" in right.content


def test_metrics_answer_a_staff_session(staff: Client, settings) -> None:
    settings.STREAMDASH_METRICS_TOKEN = ""
    response = staff.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b'streamdash_live_readers{kind="sse"}' in response.content
