"""Which run the /examples/ page shows: only ever one of the viewer's projects, since the page
mints a read token for it."""

from __future__ import annotations

from apps.projects.selectors import Viewer, projects_visible_to
from apps.runs.models import Run


def example_run(run_id: str | None, *, viewer: Viewer) -> Run | None:
    """The run asked for, else the newest run with an ``ai`` stream (the demo writer's), among
    the runs the viewer may see in the dashboard."""
    runs = Run.objects.filter(project__in=projects_visible_to(viewer))
    if run_id:
        return runs.filter(pk=run_id).first()
    return runs.filter(streams__key="ai").order_by("-created_at", "-pk").first()
