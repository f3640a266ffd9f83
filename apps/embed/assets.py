"""Static files the /examples/ page can do without.

React's UMD builds are not shipped (static/streamdash/vendor/ is for an operator to fill). With
DEBUG=0 the manifest storage raises ValueError for a file that ``collectstatic`` did not collect
(``WHITENOISE_MANIFEST_STRICT = False`` only lets it hash a file that exists), and ``{% static %}``
would turn that into a 500 for the whole page. Resolving the URLs here lets the page leave
the React example out and say why instead. Under DEBUG the plain storage never raises: the
tags stay, and a missing file is a 404 the page's note covers just the same.
"""

from __future__ import annotations

from django.contrib.staticfiles.storage import staticfiles_storage

REACT_VENDOR = (
    "streamdash/vendor/react.production.min.js",
    "streamdash/vendor/react-dom.production.min.js",
)


def static_urls_if_present(names: tuple[str, ...]) -> list[str]:
    """The URLs of all of ``names``, or none when the storage cannot serve one of them (React
    DOM without React is of no use)."""
    try:
        return [staticfiles_storage.url(name) for name in names]
    except ValueError:
        return []
