"""The workflow side stays light: importing the workflows (and what they pass through the sandbox)
loads no scientific, database or graph library, so a workflow-only worker stays small and the
sandbox has nothing heavy to pass through or re-import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("scipy", "numpy", "sqlalchemy", "sqlmodel", "networkx", "psycopg")
WORKFLOW_SIDE = (
    "workflows.rsi",
    "workflows.online_window",
    "workflows.rollout",
    "workflows.metrics",
    "spark.rsi.contracts",
    "spark.temporal",
)


def _loaded_after_import(*modules: str, code: str = "") -> set[str]:
    """The top-level packages in ``sys.modules`` of a fresh interpreter after importing
    ``modules`` and running ``code``."""
    script = "\n".join(
        [
            "import importlib, json, sys",
            *[f"importlib.import_module({m!r})" for m in modules],
            code,
            "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))",
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", WORKFLOW_SIDE)
def test_workflow_side_module_imports_nothing_heavy(module: str) -> None:
    """Each workflow-side module loads none of scipy, numpy, SQLAlchemy, networkx, psycopg."""
    assert _loaded_after_import(module) & set(HEAVY) == set()


def test_workflow_worker_built_without_heavy_imports() -> None:
    """A workflow-only worker (SPARK_WORKER_ROLE=workflows) is built without loading them."""
    code = "\n".join(
        [
            "from spark.worker import worker_options",
            "from spark.settings import SparkSettings",
            "options = worker_options(SparkSettings(database_url='sqlite:///unused.db'),"
            " role='workflows')",
            "assert options['workflows'] and not options['activities'], options",
        ]
    )
    assert _loaded_after_import(code=code) & set(HEAVY) == set()


def test_the_guard_sees_heavy_imports() -> None:
    """The check itself can fail: the activities do load the heavy libraries."""
    assert {"scipy", "sqlalchemy"} <= _loaded_after_import("activities")


def test_worker_role_and_cache_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """SPARK_WORKER_ROLE picks the side a worker runs; SPARK_MAX_CACHED_WORKFLOWS its cache."""
    from spark.settings import SparkSettings
    from spark.worker import worker_options, worker_role_from_env

    monkeypatch.setenv("SPARK_WORKER_ROLE", "workflows")
    monkeypatch.setenv("SPARK_MAX_CACHED_WORKFLOWS", "7")
    options = worker_options(
        SparkSettings(database_url="sqlite:///unused.db"), worker_role_from_env()
    )
    assert (len(options["workflows"]), options["activities"]) == (1, [])
    assert options["max_cached_workflows"] == 7


@pytest.mark.parametrize(
    ("variable", "value"), [("SPARK_WORKER_ROLE", "both"), ("SPARK_MAX_CACHED_WORKFLOWS", "-1")]
)
def test_bad_worker_setting_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """A role outside all/workflows/activities or a cache size that is not a count is refused
    with a ConfigurationError naming the variable."""
    from spark.errors import ConfigurationError
    from spark.settings import SparkSettings
    from spark.worker import worker_options, worker_role_from_env

    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        worker_options(SparkSettings(database_url="sqlite:///unused.db"), worker_role_from_env())


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SPARK_WORKER_ROLE", "both"),
        ("SPARK_GENERATOR", "bogus"),
        ("SPARK_TELEMETRY_WRITER_PROCESS", "maybe"),
        ("SPARK_METRICS_ADDRESS", "nope"),
    ],
)
def test_a_worker_with_a_bad_setting_exits_2_naming_it(variable: str, value: str) -> None:
    """The worker refuses a setting it cannot read before it connects anywhere: exit code 2
    and one line on stderr naming the variable, no traceback."""
    env = {**os.environ, variable: value}
    done = subprocess.run(
        [sys.executable, "-m", "spark.worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0] and "Traceback" not in done.stderr
