"""``/metrics``: the Prometheus exposition (``streamdash.core.metrics_export``).

Who may read it: a request with ``Authorization: Bearer <STREAMDASH_METRICS_TOKEN>`` when that
setting is set, or a logged-in staff user. Anyone else gets a 404 when no token is set (the
endpoint does not exist for them), and a 401 in the JSON error shape when one is. With
``STREAMDASH_METRICS=0`` it is a 404 for everyone.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.api.errors import error_response
from apps.streams.pools import pools_record
from streamdash.core import metrics, metrics_export
from streamdash.core.errors import Unauthorized


def _bearer_ok(request: HttpRequest) -> bool:
    token = str(settings.STREAMDASH_METRICS_TOKEN)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token.encode())
    )


def _is_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_staff)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not metrics.enabled():
        raise Http404("Metrics are off (STREAMDASH_METRICS=0).")
    if not (_bearer_ok(request) or _is_staff(request)):
        if not settings.STREAMDASH_METRICS_TOKEN:
            raise Http404("No such page.")
        response = error_response(Unauthorized("Send Authorization: Bearer <metrics token>."))
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    pools_record()
    return HttpResponse(metrics_export.exposition(), content_type=metrics_export.CONTENT_TYPE)
