"""``python -m streamdash.sdk worker --tasks myapp.tasks [--tasks more.tasks]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys

from streamdash.sdk._worker import Worker


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m streamdash.sdk")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run queued runs of the given tasks")
    worker.add_argument("--tasks", action="append", required=True, help="module defining tasks")
    worker.add_argument("--concurrency", type=int, default=4)
    worker.add_argument("--poll-interval", type=float, default=0.5)
    worker.add_argument(
        "--heartbeat", type=float, default=1.0, help="seconds between checks for canceled runs"
    )
    worker.add_argument("--max-runs", type=int, default=None, help="exit after this many runs")
    worker.add_argument(
        "--idle-exit", type=float, default=None, help="exit after this many idle seconds"
    )
    return parser


async def _work(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    worker = Worker(
        concurrency=args.concurrency, poll_interval=args.poll_interval, heartbeat=args.heartbeat
    )
    await worker.run(max_runs=args.max_runs, idle_timeout=args.idle_exit, stop=stop)
    return 1 if worker.failed and not worker.completed else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.path.insert(0, os.getcwd())
    for module in args.tasks:
        importlib.import_module(module)
    return asyncio.run(_work(args))


if __name__ == "__main__":
    sys.exit(main())
