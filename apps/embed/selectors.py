"""Which run the /examples/ page shows."""

from __future__ import annotations

from apps.runs.models import Run


def example_run(run_id: str | None) -> Run | None:
    """The run asked for, else the newest run with an ``ai`` stream (the demo writer's)."""
    runs = Run.objects.all()
    if run_id:
        return runs.filter(pk=run_id).first()
    return runs.filter(streams__key="ai").order_by("-created_at", "-pk").first()
