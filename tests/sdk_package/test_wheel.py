"""The SDK as users get it: the wheel built from this checkout, installed into a fresh venv
with mypy and pyright and nothing else (no Django). There, the SDK imports, ``mypy --strict``
sees its types through the ``py.typed`` marker (revealed types and reported misuses are
checked against the ``# expect:`` and ``# error:`` comments of ``USER_MODULE``), and
``pyright --verifytypes`` finds every public name fully typed.

Slow (a build, a fresh venv, a pip install: a minute or two with a warm pip cache) and free of
any database, so CI runs it in the SQLite pass only (.ci/run)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import streamdash.sdk as sdk

pytestmark = [pytest.mark.package, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
# What `python -m build` needs from the checkout; copied so that the build leaves nothing
# behind in the working tree (egg-info, build/) and never packs a stale build/ directory.
SOURCES = ("pyproject.toml", "README.md", "streamdash", "apps")

USER_MODULE = """\
from __future__ import annotations

from pydantic import BaseModel
from typing_extensions import TypedDict

from streamdash.sdk import streams, task


class Prompt(BaseModel):
    text: str


class Answer(BaseModel):
    delta: str


class Progress(TypedDict):
    step: str
    percent: int


log = streams.define("log", chunk=str)
answers = streams.define("answers", chunk=Answer)
progress = streams.define("progress", chunk=Progress)


@task("echo")
async def echo(payload: Prompt) -> dict[str, bool]:
    await progress.append({"step": "start", "percent": 0})
    return {"ok": True}


async def backend(run_id: str) -> None:
    async for line in log.read(run_id):
        reveal_type(line)  # expect: str
    async for answer in answers.read(run_id):
        reveal_type(answer)  # expect: user_code.Answer
    for step in progress.read_sync(run_id):
        reveal_type(step)  # expect: TypedDict(user_code.Progress, {'step': str, 'percent': int})
    reveal_type(echo)  # expect: streamdash.sdk._tasks.Task[user_code.Prompt, dict[str, bool]]
    handle = await echo.trigger(Prompt(text="hi"))
    reveal_type(handle)  # expect: streamdash.sdk._tasks.RunHandle
    result = await echo.run_local(Prompt(text="hi"))
    reveal_type(result)  # expect: streamdash.sdk._tasks.RunResult[dict[str, bool]]


async def misuse() -> None:
    await progress.append("not a Progress")  # error: "append" of "StreamDefinition" has incompatible type "str"; expected "Progress"
    await echo.trigger("not a Prompt")  # error: "trigger" of "Task" has incompatible type "str"; expected "Prompt | None"
    log.append_sync(42)  # error: "append_sync" of "StreamDefinition" has incompatible type "int"; expected "str"
"""  # noqa: E501

# Run inside the venv: is any server requirement of the wheel installed, or imported?
NO_SERVER_CHECK = """\
import importlib.metadata as md, importlib.util, json, re, sys
import streamdash.sdk

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

server = {
    norm(re.split(r"[\\s\\[<>=!~;]", req, maxsplit=1)[0])
    for req in md.requires("streamdash") or []
    if 'extra == "server"' in req
}
installed = {norm(d.metadata["Name"]) for d in md.distributions()}
print(json.dumps({
    "server": sorted(server),
    "installed": sorted(server & installed),
    "django_importable": importlib.util.find_spec("django") is not None,
    "imported": sorted(m for m in sys.modules if m.partition(".")[0] in ("django", "apps")),
}))
"""


@dataclass(frozen=True)
class Venv:
    path: Path
    env: dict[str, str]

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=600, check=False
        )


def _checked(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    build = [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(src)]
    _checked(subprocess.run(build, capture_output=True, text=True, timeout=600, check=False))
    (found,) = dist.glob("streamdash-*.whl")
    return found


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Iterator[Venv]:
    """A fresh venv with the wheel (and its own requirements), and the checkers at the
    versions this checkout's dev environment pins."""
    path = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(path)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "MYPYPATH", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE")
    }
    # pyright finds the interpreter (and so site-packages) through PATH and VIRTUAL_ENV.
    env |= {"VIRTUAL_ENV": str(path), "PATH": f"{path / 'bin'}{os.pathsep}{env['PATH']}"}
    made = Venv(path, env)
    checkers = [f"{name}=={importlib.metadata.version(name)}" for name in ("mypy", "pyright")]
    _checked(made.run(made.python, "-m", "pip", "install", "-q", str(wheel), *checkers, cwd=path))
    yield made
    shutil.rmtree(path, ignore_errors=True)


def test_wheel_ships_the_py_typed_marker(wheel: Path) -> None:
    assert "streamdash/sdk/py.typed" in zipfile.ZipFile(wheel).namelist()


def test_wheel_sdk_installs_and_imports_without_the_server(user_venv: Venv, tmp_path: Path) -> None:
    done = user_venv.run(user_venv.python, "-c", NO_SERVER_CHECK, cwd=tmp_path)
    report = json.loads(_checked(done))
    assert "django" in report["server"]
    assert report["installed"] == []
    assert report["django_importable"] is False
    assert report["imported"] == []


def _expected(source: str, kind: str) -> dict[int, str]:
    return {
        number: line.partition(f"# {kind}: ")[2]
        for number, line in enumerate(source.splitlines(), start=1)
        if f"# {kind}: " in line
    }


def test_wheel_types_reach_user_code_under_mypy_strict(user_venv: Venv, tmp_path: Path) -> None:
    (tmp_path / "user_code.py").write_text(USER_MODULE)
    done = user_venv.run(user_venv.python, "-m", "mypy", "--strict", "user_code.py", cwd=tmp_path)
    revealed: dict[int, str] = {}
    errors: dict[int, str] = {}
    for line in done.stdout.splitlines():
        if found := re.match(r'user_code\.py:(\d+): note: Revealed type is "(.*)"$', line):
            revealed[int(found[1])] = found[2]
        elif found := re.match(r"user_code\.py:(\d+): error: (.*)$", line):
            errors[int(found[1])] = found[2]
        elif not line.startswith("Found "):
            pytest.fail(f"unexpected mypy output: {line}\n{done.stdout}{done.stderr}")
    assert revealed == _expected(USER_MODULE, "expect"), done.stdout
    wanted = _expected(USER_MODULE, "error")
    assert errors.keys() == wanted.keys(), done.stdout  # the misuses, and nothing else
    for number, fragment in wanted.items():
        assert fragment in errors[number], done.stdout


def test_wheel_public_names_fully_typed_for_pyright(user_venv: Venv, tmp_path: Path) -> None:
    # --ignoreexternal: httpx's and pydantic's own gaps (unannotated attributes of
    # httpx.Response, pydantic.BaseModel's metaclass) are theirs to fix, not the SDK's.
    verify = ("pyright", "--verifytypes", "streamdash.sdk", "--ignoreexternal", "--outputjson")
    done = user_venv.run(*verify, cwd=tmp_path)
    report = json.loads(done.stdout)["typeCompleteness"]
    assert report.get("pyTypedPath", "").endswith("streamdash/sdk/py.typed"), done.stdout[:2000]
    untyped = [
        f"{symbol['name']}: {[d['message'] for d in symbol['diagnostics']]}"
        for symbol in report["symbols"]
        if not symbol["isTypeKnown"] or symbol["isTypeAmbiguous"]
    ]
    score = f"type completeness {report['completenessScore']:.1%}"
    assert report["completenessScore"] == 1, "\n".join([score, *untyped])
    exported = {symbol["name"] for symbol in report["symbols"] if symbol["isExported"]}
    assert {f"streamdash.sdk.{name}" for name in sdk.__all__} <= exported
