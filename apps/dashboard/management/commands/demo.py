"""``python manage.py demo``: migrate, a demo login, daphne on loopback, a live demo writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from apps.dashboard.demo import DEMO_PASSWORD, DEMO_USER, DemoWriter, demo_setup
from streamdash.core.serving import daphne_command


class Command(BaseCommand):
    help = "Run a local demo: daphne on 127.0.0.1 with a writer that streams a run every ~30 s."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--interval", type=float, default=30.0, help="Seconds between runs.")
        parser.add_argument("--no-writer", action="store_true", help="Serve only.")

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        _, secret = demo_setup()
        url = f"http://{options['host']}:{options['port']}"
        self.stderr.write(
            self.style.WARNING(
                f"WARNING: user '{DEMO_USER}' has the password '{DEMO_PASSWORD}'. "
                "This demo is for local use only; never expose it."
            )
        )
        env = {**os.environ}
        env.setdefault("DEBUG", "1" if settings.DEBUG else "0")
        server = subprocess.Popen(daphne_command(options["host"], options["port"]), env=env)
        stop = threading.Event()
        # SIGTERM stops the demo like Ctrl-C does: the finally below ends daphne too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            self._wait_until_up(server, url)
            self.stdout.write(
                self.style.SUCCESS(f"\nstreamdash is running: {url}/")
                + f"\nlog in as {DEMO_USER} / {DEMO_PASSWORD}; Ctrl-C stops.\n"
            )
            if not options["no_writer"]:
                writer = DemoWriter(url, secret, interval=options["interval"])
                threading.Thread(target=writer.run_forever, args=(stop,), daemon=True).start()
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            if server.poll() is None:
                server.terminate()
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()

    def _wait_until_up(self, server: subprocess.Popen[bytes], url: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise CommandError(f"daphne exited with status {server.returncode}.")
            try:
                httpx.get(f"{url}/accounts/login/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise CommandError(f"daphne did not answer on {url} within 30 s.")
