from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.projects.services import project_create
from streamdash.core.errors import DomainError


class Command(BaseCommand):
    help = "Create a project and print its secret API key (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--member",
            action="append",
            default=[],
            metavar="USERNAME",
            help="A dashboard user who sees the project (repeatable; staff see every project).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            _, secret = project_create(name=options["name"], members=options["member"])
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(secret)
