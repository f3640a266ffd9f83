"""/examples/: the three ways to show a stream in an application page, live on a real run."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.embed.assets import REACT_VENDOR, static_urls_if_present
from apps.embed.selectors import example_run
from apps.projects.tokens import token_mint


@login_required
@require_GET
def examples(request: HttpRequest) -> HttpResponse:
    asked = request.GET.get("run")
    run = example_run(asked, viewer=request.user)
    if asked and run is None:
        # Another project's run is as missing as an unknown one: no token, no hint it exists.
        raise Http404("No such run.")
    # A read token scoped to this one run, as an application backend would mint for its page.
    token = token_mint(project_id=run.project_id, scopes=[f"read:runs:{run.id}"]) if run else ""
    keys = set(run.streams.values_list("key", flat=True)) if run else set()
    context = {
        "run": run,
        "token": token,
        "list_key": "progress" if "progress" in keys else "ai",
        "react_scripts": static_urls_if_present(REACT_VENDOR),
        "nav": "examples",
    }
    return render(request, "embed/examples.html", context)
