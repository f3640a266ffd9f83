from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from asgiref.sync import SyncToAsync
from django.db import connections
from django.test import Client

from apps.projects import credentials
from apps.projects.models import Project
from apps.streams import pg_append, threads
from tests.factories import make_project
from tests.server import Server, server_database

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "false")


@pytest.fixture(autouse=True)
def plain_static_storage(settings) -> None:
    """Pages use {% static %}; tests run without collectstatic's manifest."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


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


@pytest.fixture(scope="session")
def server_db() -> Iterator[str]:
    with server_database() as url:
        Server(url).manage("migrate", "--noinput", "-v0")
        yield url


@pytest.fixture(scope="session")
def server(server_db: str) -> Iterator[Server]:
    """A real daphne on loopback (public /ds/ on), shared by the session's e2e tests."""
    with Server(server_db, {"STREAMDASH_PUBLIC_DS": "1"}) as live:
        yield live


@pytest.fixture(scope="session")
def server_key(server: Server) -> str:
    return server.create_project()


@pytest.fixture(autouse=True)
async def _close_async_pool() -> AsyncIterator[None]:
    """A test's event loop goes with the test: so must the psycopg async pool opened on it
    (live reads catching up from PostgreSQL use it), or its connections stay open to the
    test database until the session ends."""
    yield
    await pg_append.close_pool()


@pytest.fixture(scope="session", autouse=True)
def _close_thread_connections(django_db_setup: None) -> Iterator[None]:
    """Before the test database is dropped: close the connections that threads other than
    the main one opened to it (asgiref's thread for ``sync_to_async``, the read and write
    pools); each held a session, and PostgreSQL refused the drop ("being accessed by other
    users")."""
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)
    threads.close_connections()


@pytest.fixture(autouse=True)
def _forget_credentials() -> Iterator[None]:
    """Each test's database starts afresh: so must the per-process credential cache."""
    credentials.forget_all()
    yield
    credentials.forget_all()
