"""The Durable Streams reference server (npm ``@durable-streams/server``) as a benchmark peer.

The package has no command line (no ``bin``: ``npx @durable-streams/server`` starts nothing),
so ``reference/serve.mjs`` starts its ``DurableStreamTestServer``, in memory or file-backed
(one log file per stream, fdatasync on every append, LMDB for metadata). The version is pinned
in ``reference/package.json`` and its lock file; the first use runs ``npm ci`` there
(``node_modules`` is ignored by git), as ``tests/conformance/run.sh`` does. Without node or
npm the peer is skipped with a note.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from apps.bench.server import BenchServer, free_port

__all__ = ["MODES", "missing", "reference_server"]

MODES = ("memory", "file")
_HERE = Path(__file__).resolve().parent / "reference"


def missing() -> str | None:
    """Why the reference server cannot run here, or None when it can (installing it now)."""
    if not (shutil.which("node") and shutil.which("npm")):
        return "node and npm are not installed: the reference server is skipped"
    if not (_HERE / "node_modules" / "@durable-streams" / "server").is_dir():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=_HERE,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            return f"npm ci failed in {_HERE}; the reference server is skipped:\n{done.stderr}"
    return None


@contextmanager
def reference_server(mode: str) -> Iterator[BenchServer]:
    """The reference server in ``mode`` ("memory" or "file", in a temporary directory)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="ds-reference-") as folder:
        command = ["node", str(_HERE / "serve.mjs"), str(port)]
        if mode == "file":
            command.append(folder)
        with BenchServer(command=command, port=port, name=f"reference server ({mode})") as server:
            yield server
