from __future__ import annotations

import os

import pytest
from django.test import Client

from apps.projects.models import Project
from tests.factories import make_project

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "false")


@pytest.fixture
def project_and_key(db: None) -> tuple[Project, str]:
    return make_project()


@pytest.fixture
def project(project_and_key: tuple[Project, str]) -> Project:
    return project_and_key[0]


@pytest.fixture
def api_key(project_and_key: tuple[Project, str]) -> str:
    return project_and_key[1]


@pytest.fixture
def api(api_key: str) -> Client:
    """A Django test client that sends the project's API key."""
    return Client(headers={"Authorization": f"Bearer {api_key}"})
