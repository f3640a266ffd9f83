"""``python manage.py streambench <scenario>``: the project's benchmarks (not tests).

Scenarios are a table (name → runner) so later issues add theirs without a chain of ifs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


def _append(command: BaseCommand, options: dict[str, Any]) -> None:
    from apps.bench import append

    append.run(
        append.Options(
            batches=options["batches"],
            batch_size=options["batch_size"],
            chunk_bytes=options["chunk_bytes"],
            writers=options["writers"],
        ),
        command.stdout.write,
    )


def _history(command: BaseCommand, options: dict[str, Any]) -> None:
    from apps.bench import history

    history.run(options["chunks"], options["repeat"], command.stdout.write)


def _purge(command: BaseCommand, options: dict[str, Any]) -> None:
    import json

    from apps.bench.purge import bench_purge

    for batch_size in (1_000, 5_000, 20_000):
        result = bench_purge(runs=20, chunks_per_run=options["chunks"] // 20, batch_size=batch_size)
        command.stdout.write(json.dumps(result))


def _big(command: BaseCommand, options: dict[str, Any]) -> None:
    import json

    from apps.bench import big

    command.stdout.write(json.dumps(big.run(options["mib"], command.stdout.write)))


def _fanout(command: BaseCommand, options: dict[str, Any]) -> None:
    import json

    from apps.bench import fanout

    figures = fanout.run(
        fanout.Options(
            readers=options["readers"],
            viewers=options["viewers"],
            rate=options["rate"],
            seconds=options["seconds"],
        ),
        command.stdout.write,
    )
    command.stdout.write(json.dumps(figures))


SCENARIOS: dict[str, Callable[[BaseCommand, dict[str, Any]], None]] = {
    "append": _append,
    "big": _big,
    "fanout": _fanout,
    "history": _history,
    "purge": _purge,
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
        parser.add_argument("--mib", type=int, default=300, help="big: stream size in MiB")
        parser.add_argument("--readers", type=int, default=1_000, help="fanout: SSE readers")
        parser.add_argument("--viewers", type=int, default=50, help="fanout: dashboard viewers")
        parser.add_argument("--rate", type=float, default=100, help="fanout: chunks/s written")
        parser.add_argument("--seconds", type=float, default=20, help="fanout: seconds written")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            SCENARIOS[options["scenario"]](self, options)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
