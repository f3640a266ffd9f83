"""``{% streamdash_stream run_id "ai" token=token mode="text" %}``: an element that fills live.

The tag renders one ``<div data-streamdash-stream …>`` carrying the stream URL, the token and
the options as data attributes, and the ``embed.js`` module that mounts it. No inline script,
so pages under a ``script-src 'self'`` CSP work; every value is attribute-escaped here, and the
chunks are inserted as text by the browser, so a chunk that says ``<script>`` shows as text.

``base_url`` (default: the ``STREAMDASH_BASE_URL`` setting, else this site) lets a Django
project show streams of a streamdash server elsewhere.
"""

from __future__ import annotations

from urllib.parse import quote

from django import template
from django.conf import settings
from django.forms.utils import flatatt
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

MODES = ("text", "list")


def stream_url(base_url: str, run_id: str, stream: str) -> str:
    return (
        f"{base_url.rstrip('/')}/api/v1/runs/{quote(str(run_id), safe='')}"
        f"/streams/{quote(str(stream), safe='')}"
    )


@register.simple_tag
def streamdash_stream(
    run_id: str,
    stream: str = "default",
    *,
    token: str = "",
    mode: str = "text",
    base_url: str | None = None,
    start_index: int | None = None,
    timeout: float | None = None,
    throttle: int | None = None,
    resume: str | None = None,
    id: str | None = None,
    css_class: str = "",
    script: bool = True,
) -> SafeString:
    if mode not in MODES:
        raise template.TemplateSyntaxError(
            f"streamdash_stream mode must be one of {', '.join(MODES)}, not {mode!r}."
        )
    if base_url is None:
        base_url = getattr(settings, "STREAMDASH_BASE_URL", "")
    options = {
        "data-start-index": start_index,
        "data-timeout": timeout,
        "data-throttle": throttle,
        "data-resume": resume,
        "id": id,
    }
    attrs = {
        "class": f"streamdash-stream streamdash-{mode} {css_class}".strip(),
        "data-streamdash-stream": "",
        "data-url": stream_url(base_url, run_id, stream),
        "data-token": token or "",
        "data-mode": mode,
        "data-state": "connecting",
        "aria-live": "polite",
        **{name: str(value) for name, value in options.items() if value not in (None, "")},
    }
    element = format_html("<div{}></div>", flatatt(attrs))
    if not script:
        return element
    return format_html(
        '{}<script type="module" src="{}"></script>', element, static("streamdash/embed.js")
    )
