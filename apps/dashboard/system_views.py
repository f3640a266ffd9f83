"""The System page: staff only (anonymous users are sent to log in, others get a 403),
refreshed by htmx every heartbeat (``STREAMDASH_SYSTEM_BEAT_SECONDS``)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.dashboard import charts
from apps.dashboard.system import system_state


@login_required
@require_GET
def system(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("The System page is for staff.")
    state = system_state()
    chart = charts.activity([(m.at, m.appends_per_second, m.readers) for m in state.minutes])
    poll_seconds = max(1, round(state.beat_seconds))
    context = {"system": state, "chart": chart, "poll_seconds": poll_seconds, "nav": "system"}
    htmx = getattr(request, "htmx", False)
    template = "dashboard/system.html#system" if htmx else "dashboard/system.html"
    return render(request, template, context)
