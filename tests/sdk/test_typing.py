"""``mypy --strict`` passes on the SDK and on a typed usage example."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_typing_mypy_strict_on_the_sdk_and_the_typed_example() -> None:
    # Without pyproject's config (--config-file=): its django-stubs plugin would import Django.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file=",
            "--python-version=3.11",
            "--strict",
            "streamdash/sdk",
            "tests/sdk/typed_example.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
