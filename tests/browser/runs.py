"""Writing runs and chunks over the API, as a task would, for the browser tests."""

from __future__ import annotations

import json

import httpx

JSON = {"Content-Type": "application/json"}


def new_run(
    writer: httpx.Client,
    keys: tuple[str, ...] = ("ai",),
    *,
    task_id: str = "browser.test",
    tags: list[str] | None = None,
) -> str:
    """An executing run with these (empty, JSON) streams; returns its id."""
    run = writer.post("/api/v1/runs", json={"task_id": task_id, "tags": tags or []})
    run.raise_for_status()
    run_id = run.json()["id"]
    writer.patch(f"/api/v1/runs/{run_id}", json={"status": "executing"}).raise_for_status()
    for key in keys:
        writer.put(f"/api/v1/runs/{run_id}/streams/{key}", headers=JSON).raise_for_status()
    return run_id


def append(writer: httpx.Client, run_id: str, values: list[object], key: str = "ai") -> None:
    response = writer.post(
        f"/api/v1/runs/{run_id}/streams/{key}", content=json.dumps(values), headers=JSON
    )
    response.raise_for_status()
