"""``python manage.py serve [--workers N] [--bind HOST] [--port PORT]``: streamdash in production.

N daphne processes share one listening socket; the supervisor that binds it, starts them,
restarts a crashed or stuck one and stops them all on SIGTERM/SIGINT is
``streamdash/core/workers.py``.
It lives in the kernel, next to daphne's flags (``serving.py``), because it imports no app and the
benchmarks start it the same way. The command lives here because a command needs an installed
app, and ``apps.api`` owns the HTTP face the workers serve; it imports nothing else of streamdash.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from streamdash.core import workers


class Command(BaseCommand):
    help = "Serve streamdash with N daphne processes sharing one socket (N > 1 needs REDIS_URL)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workers", type=int, default=workers.cores(), help="default: cores")
        parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--grace", type=float, default=10.0, help="seconds to finish on stop")
        parser.add_argument(
            "--hang-seconds",
            type=float,
            default=30.0,
            help="replace a worker that answers no probe for this long (0: never)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count = options["workers"]
        if count < 1:
            raise CommandError("--workers must be at least 1.")
        if options["hang_seconds"] < 0:
            raise CommandError("--hang-seconds must be 0 (never) or more.")
        if count > 1 and not settings.REDIS_URL:
            raise CommandError(
                f"--workers {count} needs REDIS_URL: without it the channel layer is in memory, "
                "one per process, so a live reader on one worker would miss appends made "
                "through another. Set REDIS_URL (redis://…) or use --workers 1."
            )
        workers.serve(
            options["bind"],
            options["port"],
            workers=count,
            grace=options["grace"],
            hang_seconds=options["hang_seconds"] or None,
            # A logger, so that STREAMDASH_LOG_FORMAT=json makes these lines JSON too.
            log=logging.getLogger("streamdash.serve").info,
        )
