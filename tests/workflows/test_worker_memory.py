"""What keeps the workflow worker small: the workflow module's code compiled once for every
sandboxed run (``spark.sandbox_code``), and freed heap memory handed back to the system
(``spark.memory``)."""

from __future__ import annotations

import asyncio
import importlib
import platform
import sys
from collections.abc import Iterator
from pathlib import Path
from types import CodeType, ModuleType

import pytest
from temporalio import workflow

from spark.errors import ConfigurationError
from spark.memory import (
    glibc_malloc_trim,
    start_trimming,
    trim_interval_from_env,
    trim_periodically,
)
from spark.sandbox_code import SharedCodeFinder, SharedCodeLoader, share_module_code
from spark.temporal import workflow_runner

MODULE = "spark_shared_code_probe"


@pytest.fixture
def probe_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A throwaway module with module-level state, importable from ``tmp_path``."""
    path = tmp_path / f"{MODULE}.py"
    path.write_text("STATE: list[int] = []\n\n\ndef answer() -> int:\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.setattr(SharedCodeLoader, "_codes", {})
    yield path
    sys.modules.pop(MODULE, None)


def _fresh_import() -> ModuleType:
    """Import the probe module anew, as the sandbox does for each workflow run."""
    sys.modules.pop(MODULE, None)
    return importlib.import_module(MODULE)


def test_without_the_finder_each_import_compiles_anew(probe_module: Path) -> None:
    """The control: a plain re-import builds new code objects (what sharing saves)."""
    first, second = _fresh_import(), _fresh_import()
    assert first.answer.__code__ is not second.answer.__code__


def test_shared_code_reimport_keeps_fresh_module_state(probe_module: Path) -> None:
    """With the finder, a re-import runs the module body again into a new module (its own
    state) but reuses the code objects."""
    sys.meta_path.insert(0, SharedCodeFinder([MODULE]))
    first, second = _fresh_import(), _fresh_import()
    assert first is not second
    assert first.STATE is not second.STATE
    assert first.answer.__code__ is second.answer.__code__


def test_shared_code_is_recompiled_when_the_file_changes(probe_module: Path) -> None:
    """A changed source file is compiled again, as a plain import would."""
    sys.meta_path.insert(0, SharedCodeFinder([MODULE]))
    assert _fresh_import().answer() == 1
    probe_module.write_text("STATE: list[int] = []\n\n\ndef answer() -> int:\n    return 22\n")
    assert _fresh_import().answer() == 22


async def test_sandbox_imports_the_workflow_module_through_the_shared_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The workflow sandbox re-imports ``workflows.rsi`` for each instance through the finder
    the worker installs, and both instances get the one compiled code object."""
    from workflows.rsi import RSIWorkflow

    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.setattr(SharedCodeLoader, "_codes", {})
    codes: list[CodeType] = []
    original = SharedCodeLoader.get_code

    def spy(self: SharedCodeLoader, fullname: str) -> CodeType:
        codes.append(original(self, fullname))
        return codes[-1]

    monkeypatch.setattr(SharedCodeLoader, "get_code", spy)
    share_module_code(RSIWorkflow.__module__)
    runner = workflow_runner()
    defn = workflow._Definition.must_from_class(RSIWorkflow)
    runner.prepare_workflow(defn)
    runner.prepare_workflow(defn)
    assert len(codes) == 2 and codes[0] is codes[1]


def test_share_module_code_installs_one_finder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking twice extends the one finder rather than stacking a second."""
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    share_module_code("a.one")
    share_module_code("a.two")
    finders = [f for f in sys.meta_path if isinstance(f, SharedCodeFinder)]
    assert len(finders) == 1 and finders[0].module_names >= {"a.one", "a.two"}
    assert sys.meta_path[0] is finders[0]


@pytest.mark.parametrize(("raw", "expected"), [("", 10.0), ("0", 0.0), (" 2.5 ", 2.5)])
def test_trim_interval_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: float
) -> None:
    """SPARK_MALLOC_TRIM_INTERVAL_S: 10 s unset, 0 turns trimming off, else its seconds."""
    monkeypatch.setenv("SPARK_MALLOC_TRIM_INTERVAL_S", raw)
    assert trim_interval_from_env() == expected


@pytest.mark.parametrize("raw", ["soon", "-1", "nan", "inf"])
def test_bad_trim_interval_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    """An interval that is not a finite number of seconds >= 0 is refused by name."""
    monkeypatch.setenv("SPARK_MALLOC_TRIM_INTERVAL_S", raw)
    with pytest.raises(ConfigurationError, match="SPARK_MALLOC_TRIM_INTERVAL_S"):
        trim_interval_from_env()


async def test_trim_runs_again_and_again_until_cancelled() -> None:
    """The trimming task calls the trim repeatedly, and stops when cancelled."""
    calls: list[int] = []
    enough = asyncio.Event()

    def trim() -> int:
        calls.append(1)
        if len(calls) == 3:
            enough.set()
        return 1

    task = asyncio.create_task(trim_periodically(trim, 0))
    await asyncio.wait_for(enough.wait(), timeout=30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(calls) >= 3


async def test_trimming_turned_off_starts_nothing() -> None:
    """An interval of 0 starts no task."""
    assert start_trimming(0) is None


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_glibc_malloc_trim_is_found_and_callable() -> None:
    """On glibc the real malloc_trim is found; it answers 0 or 1."""
    trim = glibc_malloc_trim()
    assert trim is not None
    assert trim() in (0, 1)
