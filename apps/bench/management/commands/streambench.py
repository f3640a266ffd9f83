"""``python manage.py streambench <scenario>``: the project's benchmarks (not tests).

Scenarios are a table (name → runner) so later issues add theirs without a chain of ifs. Each
runner prints its figures beside their baselines (stdout), draws its progress on stderr, and
returns its figures, which the command prints as one JSON line (stdout) for machines, with how
the whole machine's CPU time went meanwhile (``machine.py``: busy, idle, stolen by the
hypervisor), so that figures from different runs can be told apart from the machine's mood.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.bench import machine
from apps.bench.report import jsonable

Runner = Callable[[BaseCommand, dict[str, Any]], dict[str, Any]]


def _append(command: BaseCommand, options: dict[str, Any]) -> dict[str, Any]:
    from apps.bench import append

    return append.run(
        append.Options(
            batches=options["batches"],
            batch_size=options["batch_size"],
            chunk_bytes=options["chunk_bytes"],
            writers=options["writers"],
            workers=options["workers"],
            reference=options["reference"],
            seconds=options["seconds"] or 300.0,
        ),
        command.stdout.write,
    )


def _history(command: BaseCommand, options: dict[str, Any]) -> dict[str, Any]:
    from apps.bench import history

    return history.run(options["chunks"], options["repeat"], command.stdout.write)


def _latency(command: BaseCommand, options: dict[str, Any]) -> dict[str, Any]:
    from apps.bench import latency

    return latency.run(
        latency.Options(
            rates=tuple(int(r) for r in options["rates"].split(",")),
            seconds=options["seconds"] or 5.0,
            workers=options["workers"],
            reference=options["reference"],
        ),
        command.stdout.write,
    )


def _purge(command: BaseCommand, options: dict[str, Any]) -> dict[str, Any]:
    from apps.bench.purge import bench_purge

    results = []
    for batch_size in (1_000, 5_000, 20_000):
        results.append(
            bench_purge(runs=20, chunks_per_run=options["chunks"] // 20, batch_size=batch_size)
        )
    return {"batches": results}


def _big(command: BaseCommand, options: dict[str, Any]) -> dict[str, Any]:
    from apps.bench import big

    return big.run(options["mib"] or 300, command.stdout.write)


def _idle(command: BaseCommand, options: dict[str, Any]) -> dict[str, Any]:
    from apps.bench import idle

    return idle.run(options["readers"] or 200, options["mib"] or 40, command.stdout.write)


def _fanout(command: BaseCommand, options: dict[str, Any]) -> dict[str, Any]:
    from apps.bench import fanout

    return fanout.run(
        fanout.Options(
            readers=options["readers"] or 1_000,
            viewers=options["viewers"],
            rate=options["rate"],
            seconds=options["seconds"] or 20.0,
            workers=options["workers"],
        ),
        command.stdout.write,
    )


def _requests(command: BaseCommand, options: dict[str, Any]) -> dict[str, Any]:
    from apps.bench import requests

    return requests.run(
        requests.Options(
            requests=options["requests"],
            seconds=options["seconds"] or 30.0,
            workers=options["workers"],
            reference=options["reference"],
        ),
        command.stdout.write,
    )


def _inprocess(command: BaseCommand, options: dict[str, Any]) -> dict[str, Any]:
    from apps.bench import inprocess

    return inprocess.run(options["requests"], command.stdout.write)


SCENARIOS: dict[str, Runner] = {
    "append": _append,
    "big": _big,
    "fanout": _fanout,
    "history": _history,
    "idle": _idle,
    "inprocess": _inprocess,
    "latency": _latency,
    "purge": _purge,
    "requests": _requests,
}


class Command(BaseCommand):
    help = "Run a benchmark scenario: " + ", ".join(sorted(SCENARIOS))

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("scenario", choices=sorted(SCENARIOS))
        parser.add_argument("--batches", type=int, default=200, help="batches per writer")
        parser.add_argument("--batch-size", type=int, default=100, help="chunks per batch")
        parser.add_argument("--chunk-bytes", type=int, default=64, help="bytes per chunk")
        parser.add_argument("--writers", type=int, default=4, help="concurrent writers")
        parser.add_argument("--chunks", type=int, default=1_000_000, help="history/purge: chunks")
        parser.add_argument("--repeat", type=int, default=20, help="history: renders per page")
        parser.add_argument(
            "--mib", type=int, default=None, help="big (300), idle (40): stream size in MiB"
        )
        parser.add_argument(
            "--readers", type=int, default=None, help="fanout (1000), idle (200): SSE readers"
        )
        parser.add_argument("--viewers", type=int, default=50, help="fanout: dashboard viewers")
        parser.add_argument("--rate", type=float, default=100, help="fanout: chunks/s written")
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help="append, fanout, latency, requests: `serve --workers N`",
        )
        parser.add_argument(
            "--no-reference",
            dest="reference",
            action="store_false",
            help="append/latency/requests: skip the Durable Streams reference server",
        )
        parser.add_argument(
            "--requests", type=int, default=1000, help="requests, inprocess: of each kind"
        )
        parser.add_argument(
            "--rates", default="20,500,2000", help="latency: chunks/s, comma-separated"
        )
        parser.add_argument(
            "--seconds",
            type=float,
            default=None,
            help="fanout: seconds written (20); latency: seconds per rate (5); at most: "
            "requests, per kind (30); append, per writer (300)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["scenario"]
        before = machine.cpu_times()
        try:
            figures = SCENARIOS[name](self, options)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        share = machine.share_between(before, machine.cpu_times())
        self.stdout.write(share.line())
        line = jsonable({"scenario": name, **figures, "machine": asdict(share)})
        self.stdout.write(json.dumps(line, allow_nan=False))
