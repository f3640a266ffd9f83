from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.projects.models import ApiKey, Project
from apps.projects.services import api_key_create, api_key_find, api_key_revoke
from streamdash.core.errors import DomainError


class Command(BaseCommand):
    help = "Manage API keys: create (prints the secret once), list, revoke."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        create = sub.add_parser("create", help="Create a key and print its secret (shown once).")
        create.add_argument("project")
        create.add_argument("--name", default="default")
        create.add_argument(
            "--scopes", default="read,write,admin", help="Comma-separated: read,write,admin."
        )
        listing = sub.add_parser("list", help="List keys (never their secrets).")
        listing.add_argument("project", nargs="?")
        revoke = sub.add_parser("revoke", help="Revoke a key at once, by id or prefix.")
        revoke.add_argument("key")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['verb']}")(options)
        except DomainError as exc:
            raise CommandError(exc.message) from exc

    def _create(self, options: dict[str, Any]) -> None:
        project = Project.objects.filter(name=options["project"]).first()
        if project is None:
            raise CommandError(f"No project named {options['project']!r}.")
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        if not scopes or set(scopes) - set(ApiKey.SCOPES):
            raise CommandError(f"Scopes must be among {', '.join(ApiKey.SCOPES)}.")
        _, secret = api_key_create(project=project, name=options["name"], scopes=scopes)
        self.stdout.write(secret)

    def _list(self, options: dict[str, Any]) -> None:
        keys = ApiKey.objects.select_related("project").order_by("project__name", "pk")
        if options["project"]:
            keys = keys.filter(project__name=options["project"])
        for key in keys:
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
            self.stdout.write(
                f"{key.pk}\t{key.prefix}…\t{key.project.name}\t{key.name}\t"
                f"{','.join(key.scopes)}\tlast used {used}\t{state}"
            )

    def _revoke(self, options: dict[str, Any]) -> None:
        key = api_key_find(ref=options["key"])
        api_key_revoke(key=key)
        self.stdout.write(f"Revoked {key.prefix}… ({key.project.name}).")
