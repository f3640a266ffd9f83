"""Settings for the test suite (pytest-django's ``DJANGO_SETTINGS_MODULE``): production
settings plus what only tests need. Servers started by end-to-end tests run the production
module (tests/server.py)."""

from __future__ import annotations

import os
import tempfile

from streamdash.settings import *  # noqa: F403
from streamdash.settings import DATABASES, MIDDLEWARE, STREAMDASH_API_MIDDLEWARE

# Django's test client runs every URL through MIDDLEWARE; a real server sends the API and
# stream URLs through STREAMDASH_API_MIDDLEWARE instead (streamdash/handlers.py). Both chains
# here, so in-process API tests see the API's CORS, headers and rate limit.
MIDDLEWARE = [*STREAMDASH_API_MIDDLEWARE, *MIDDLEWARE]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not Django's default in-memory test database: that is shared-cache SQLite, whose
    # table locks fail at once ("database table is locked") when a hub thread reads while a
    # test writes, instead of waiting like WAL does.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"streamdash-test-{os.getpid()}.sqlite3")
    }
