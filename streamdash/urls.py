from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.defaults import page_not_found

from apps.api.errors import error_response
from apps.api.metrics_views import metrics_view
from apps.api.urls import PREFIXES
from streamdash.core.errors import NotFound

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("", include("apps.api.urls")),
    path("", include("apps.dashboard.urls")),
    path("", include("apps.embed.urls")),
]


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    """An unknown URL under the API's prefixes answers in the API's JSON error shape."""
    if request.path_info.startswith(PREFIXES):
        return error_response(NotFound(f"No API route at {request.path_info!r}."))
    return page_not_found(request, exception)
