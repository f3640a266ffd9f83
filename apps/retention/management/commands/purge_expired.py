from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.retention.services import PurgeReport, purge_expired


class Command(BaseCommand):
    help = "Delete expired runs' chunks, expired standalone streams and old run tombstones."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Report, change nothing.")
        parser.add_argument("--batch-size", type=int, default=None, help="Chunks per transaction.")

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(report: PurgeReport) -> None:
            if options["verbosity"] >= 1:
                self.stderr.write(
                    f"  … {report.chunks_deleted} chunks, {report.bytes_freed} bytes",
                    ending="\r",
                )

        report = purge_expired(
            dry_run=options["dry_run"], batch_size=options["batch_size"], progress=progress
        )
        if report.skipped:
            self.stdout.write("Another purge is running; nothing done.")
            return
        self.stdout.write(report.summary())
