"""The local demo: a demo login and project, and a writer that streams a fake LLM answer.

The writer talks to the running server over the public HTTP API, exactly like a task would, so
every chunk takes the one write path inside the server process (and readers are told at once).
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass

import httpx
from django.contrib.auth import get_user_model
from django.db import transaction

from apps.projects.models import Project
from apps.projects.services import api_key_create, project_members_add

DEMO_USER = "demo"
DEMO_PASSWORD = "demo"
DEMO_PROJECT = "demo"

_ANSWER = (
    "Durable streams keep every chunk a task writes, in order, under a dense index. "
    "A reader that drops its connection resumes from the last index it saw and gets "
    "each chunk exactly once, so nothing is lost and nothing is repeated. "
    "The dashboard follows the same streams live over a WebSocket, batches fast "
    "streams so the page stays smooth, and lets you inspect or replay any run later, "
    "from any index, instantly or with the original timing."
)
_STAGES = ("retrieving context", "drafting", "checking facts", "polishing")


def demo_setup() -> tuple[Project, str]:
    """Idempotent: the demo superuser and project, the user a member of it (so the demo still
    shows if the user is made an ordinary one); a fresh writer key each time (the secret of an
    old key cannot be read back)."""
    with transaction.atomic():
        users = get_user_model()
        if not users.objects.filter(username=DEMO_USER).exists():
            users.objects.create_superuser(DEMO_USER, email="", password=DEMO_PASSWORD)
        project, _ = Project.objects.get_or_create(name=DEMO_PROJECT)
        project_members_add(project=project, usernames=[DEMO_USER])
        _, secret = api_key_create(project=project, name="demo-writer", scopes=["read", "write"])
    return project, secret


def _tokens(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


@dataclass
class DemoWriter:
    base_url: str
    secret: str
    interval: float = 30.0
    token_delay: float = 0.06

    def run_forever(self, stop: threading.Event) -> None:
        with httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.secret}"},
            timeout=10,
        ) as client:
            while not stop.is_set():
                began = time.monotonic()
                try:
                    self.one_run(client, stop)
                except httpx.HTTPError as exc:
                    print(f"demo writer: {exc}; retrying", flush=True)
                stop.wait(max(1.0, self.interval - (time.monotonic() - began)))

    def one_run(self, client: httpx.Client, stop: threading.Event) -> str:
        question = random.choice(
            ["What is a durable stream?", "Why resume from an index?", "How does replay work?"]
        )
        run = client.post(
            "/api/v1/runs",
            json={
                "task_id": "demo.chat",
                "payload": {"prompt": question, "model": "demo-llm"},
                "metadata": {"source": "manage.py demo"},
                "tags": ["demo", "llm"],
            },
        )
        run.raise_for_status()
        run_id: str = run.json()["id"]
        base = f"/api/v1/runs/{run_id}"
        client.patch(base, json={"status": "executing"}).raise_for_status()
        json_type = {"Content-Type": "application/json"}
        for key in ("ai", "progress"):
            client.put(f"{base}/streams/{key}", headers=json_type).raise_for_status()
        tokens = _tokens(_ANSWER)
        for i, token in enumerate(tokens):
            if stop.is_set():
                break
            body = json.dumps([{"type": "text-delta", "delta": token}])
            client.post(f"{base}/streams/ai", content=body, headers=json_type).raise_for_status()
            if i % 12 == 0:
                stage = _STAGES[min(len(_STAGES) - 1, i * len(_STAGES) // len(tokens))]
                progress = {"pct": round(100 * i / len(tokens)), "stage": stage}
                client.post(
                    f"{base}/streams/progress", content=json.dumps(progress), headers=json_type
                ).raise_for_status()
            time.sleep(self.token_delay * random.uniform(0.4, 1.8))
        client.post(
            f"{base}/streams/progress",
            content=json.dumps({"pct": 100, "stage": "done"}),
            headers=json_type,
        ).raise_for_status()
        client.patch(
            base,
            json={"status": "completed", "output": {"text": _ANSWER, "tokens": len(tokens)}},
        ).raise_for_status()
        return run_id
