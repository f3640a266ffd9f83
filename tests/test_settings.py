"""Development settings never fall back to a published secret key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _secret_key() -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DJANGO_SETTINGS_MODULE")}
    env["DEBUG"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", "from streamdash import settings; print(settings.SECRET_KEY)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_settings_debug_without_secret_key_uses_this_installs_own_key() -> None:
    first, second = _secret_key(), _secret_key()
    assert first == second  # kept, so sessions and tokens survive a restart
    assert len(first) >= 50
    assert "insecure" not in first
    assert (ROOT / ".dev-secret-key").stat().st_mode & 0o077 == 0
