"""The public surface: a complete, sorted ``__all__``, and an import that needs no Django."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import types

import streamdash.sdk as sdk
from streamdash.sdk import _exceptions


def test_all_is_sorted_and_complete() -> None:
    assert sdk.__all__ == sorted(sdk.__all__)
    public = {
        name
        for name, value in vars(sdk).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public == set(sdk.__all__)


def test_all_exceptions_are_exported_and_drawn_in_the_tree() -> None:
    errors = {
        name
        for name, value in vars(_exceptions).items()
        if inspect.isclass(value) and issubclass(value, Exception)
    }
    assert errors <= set(sdk.__all__)
    for name in errors:
        assert name in (_exceptions.__doc__ or ""), name


def test_import_needs_no_django() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")}
    code = (
        "import sys; import streamdash.sdk as sdk; sdk.streams.define('x', chunk=int); "
        "import streamdash.sdk.__main__; "
        "bad = sorted(m for m in sys.modules "
        "             if m.split('.')[0] in ('django', 'apps', 'channels')); "
        "assert not bad, bad; print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr
