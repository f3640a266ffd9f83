from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client


@pytest.fixture
def user(db: None):
    return get_user_model().objects.create_user("operator", password="pw-operator-1")


@pytest.fixture
def dash(user, project) -> Client:
    """A test client logged in to the dashboard as a member of ``project`` (the dashboard shows
    a user only their projects' runs and streams)."""
    project.members.add(user)
    client = Client()
    client.force_login(user)
    return client
