"""The compose cluster (docker-compose.yml, Dockerfile, deploy/) is checked against the code:
services and their start-up order, images pinned, no hidden failures, the worker's environment
and search attributes as the code defines them, and the namespace setup script run for real
against a dev server. Docker itself is not available here, so the images are not built."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from spark.temporal import search_attribute_cli_flags

ROOT = Path(__file__).resolve().parents[2]
SETUP_SCHEMA = ROOT / "deploy" / "temporal" / "setup-schema.sh"
SETUP_NAMESPACE = ROOT / "deploy" / "temporal" / "setup-namespace.sh"
BIN = Path(sys.executable).parent


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _services() -> dict[str, Any]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _depends(service: str) -> dict[str, str]:
    """``{dependency: condition}`` of one service."""
    return {name: spec["condition"] for name, spec in _services()[service]["depends_on"].items()}


def _deploy_texts() -> dict[str, str]:
    paths = [ROOT / "docker-compose.yml", ROOT / "Dockerfile", *(ROOT / "deploy").rglob("*")]
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in paths if p.is_file()}


def test_temporal_runs_from_the_server_image_not_auto_setup() -> None:
    """``temporalio/auto-setup`` is gone: the server image, with admin-tools for the setup."""
    images = {name: spec.get("image", "") for name, spec in _services().items()}

    assert not any("auto-setup" in text for text in _deploy_texts().values())
    assert images["temporal"].startswith("temporalio/server:")
    assert images["temporal-schema"].startswith("temporalio/admin-tools:")
    assert images["temporal-setup"].startswith("temporalio/admin-tools:")
    assert images["temporal-ui"].startswith("temporalio/ui:")


def test_every_image_is_pinned_to_a_version() -> None:
    """Each pulled image names a version (``${VAR:-1.2.3}`` or a literal tag), never latest."""
    for name, spec in _services().items():
        if "build" in spec:
            continue
        tag = spec["image"].split(":", 1)[1]
        default = re.fullmatch(r"\$\{\w+:-([^}]+)\}", tag)
        version = default.group(1) if default else tag
        assert re.fullmatch(r"\d+(\.\d+)+", version), f"{name}: {spec['image']!r} is not pinned"


def test_setup_steps_run_in_order_and_each_waits_for_success() -> None:
    """postgresql healthy -> schema done -> server healthy -> namespace done -> workers."""
    assert _depends("temporal-schema") == {"postgresql": "service_healthy"}
    assert _depends("temporal") == {"temporal-schema": "service_completed_successfully"}
    assert _depends("temporal-setup") == {"temporal": "service_healthy"}
    assert _depends("temporal-ui") == {"temporal": "service_healthy"}
    assert _depends("spark-worker") == {
        "postgresql": "service_healthy",
        "temporal-setup": "service_completed_successfully",
    }
    for one_shot in ("temporal-schema", "temporal-setup"):
        assert _services()[one_shot]["restart"] == "no"
    assert "healthcheck" in _services()["temporal"] and "healthcheck" in _services()["postgresql"]


def test_no_failure_is_hidden() -> None:
    """No ``|| true`` anywhere; the setup scripts stop at the first failing command."""
    for path, text in _deploy_texts().items():
        assert not re.search(r"\|\|\s*true", text), path
        assert "2>/dev/null || " not in text, path
    for script in (SETUP_SCHEMA, SETUP_NAMESPACE):
        assert "set -euo pipefail" in script.read_text(encoding="utf-8")
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_the_scripts_the_services_run_are_the_ones_in_deploy() -> None:
    """Each setup service mounts its script from deploy/temporal and runs that file."""
    for service, script in (("temporal-schema", SETUP_SCHEMA), ("temporal-setup", SETUP_NAMESPACE)):
        spec = _services()[service]
        mounts = dict(volume.rsplit(":", 2)[:2] for volume in spec["volumes"])
        inside = mounts[f"./{script.relative_to(ROOT)}"]
        assert spec["entrypoint"] == ["bash", inside]


def test_the_schema_step_installs_only_where_missing_then_updates() -> None:
    """``setup-schema -v 0.0`` runs only when no schema_version table exists (re-running it would
    reset the recorded version); ``update-schema`` then applies the image's versioned changes."""
    text = SETUP_SCHEMA.read_text(encoding="utf-8")

    assert "--plugin postgres12" in text
    assert "/etc/temporal/schema/postgresql/v12" in text
    assert re.search(r"if schema_installed .*?else.*?setup-schema -v 0\.0.*?fi", text, re.DOTALL)
    assert re.search(r"if database_exists .*?else.*?--db \"\$\{db\}\" create.*?fi", text, re.DOTALL)
    assert 'update-schema -d "${SCHEMA_ROOT}/${dir}/versioned"' in text
    assert 'setup_database "${TEMPORAL_DATABASE:-temporal}" temporal' in text
    assert "visibility" in text


def test_leftovers_are_gone() -> None:
    """No CORS origin for a port nothing serves."""
    assert not any("TEMPORAL_CORS_ORIGINS" in text for text in _deploy_texts().values())


def test_search_attributes_are_the_codes() -> None:
    """The setup step registers exactly spark/temporal.py's search attributes."""
    env = _services()["temporal-setup"]["environment"]
    flags = search_attribute_cli_flags()

    assert env["SPARK_SEARCH_ATTRIBUTES"].split() == flags[1::2]


def test_the_worker_environment_is_what_the_settings_read() -> None:
    """Every variable compose gives the worker is one spark.settings reads."""
    settings_source = (ROOT / "spark" / "settings.py").read_text(encoding="utf-8")
    env = _services()["spark-worker"]["environment"]

    assert env == _services()["spark-cli"]["environment"]
    for name in env:
        assert name in settings_source, f"{name} is not read by spark.settings"


def test_the_worker_image_runs_as_a_non_root_user_without_examples_by_default() -> None:
    """The final stage switches to ``spark`` and runs ``spark-worker``; examples and benchmarks
    are copied only in the WITH_EXAMPLES=true stage; user packages come in by build argument."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    final_stage = dockerfile[dockerfile.rindex("\nFROM ") :]
    examples_stage = re.search(r"FROM base AS examples-true\n(.*?)\n\n", dockerfile, re.DOTALL)

    assert re.search(r"^USER spark$", final_stage, re.MULTILINE)
    assert "USER root" not in final_stage
    assert 'CMD ["spark-worker"]' in final_stage
    assert "ARG WITH_EXAMPLES=false" in dockerfile
    assert examples_stage is not None and "COPY examples" in examples_stage.group(1)
    assert dockerfile.count("COPY examples") == 1 and dockerfile.count("COPY bench") == 1
    assert "ARG EXTRA_PACKAGES" in final_stage
    assert "--require-hashes" in dockerfile and "requirements.lock" in dockerfile
    build = _services()["spark-worker"]["build"]
    assert set(build["args"]) == {"EXTRA_PACKAGES", "WITH_EXAMPLES"}
    assert "user" not in _services()["spark-worker"]


def test_the_readme_shows_how_user_nodes_reach_the_worker_image() -> None:
    """The README's Production section shows both ways: the build argument and a FROM image."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    production = readme[readme.index("## Production") :]
    production = production[: production.index("\n## ", 1)]

    assert "SPARK_WORKER_PACKAGES=" in production
    assert "FROM spark-rsi-worker" in production


def _run_setup(address: str, namespace: str, wait_s: int = 60) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_NAMESPACE": namespace,
        "SPARK_SEARCH_ATTRIBUTES": _services()["temporal-setup"]["environment"][
            "SPARK_SEARCH_ATTRIBUTES"
        ],
        "SETUP_WAIT_S": str(wait_s),
    }
    return subprocess.run(
        ["bash", str(SETUP_NAMESPACE)], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.devserver
def test_the_namespace_setup_creates_then_finds_everything(dev_server: str) -> None:
    """Run against a real server: a new namespace and every attribute are created; a second run
    finds them all and changes nothing (safe to run on every ``docker compose up``)."""
    namespace = f"compose-{uuid.uuid4().hex[:8]}"
    names = search_attribute_cli_flags()[1::2]

    first = _run_setup(dev_server, namespace)
    second = _run_setup(dev_server, namespace)

    assert first.returncode == 0, first.stderr + first.stdout
    assert f"namespace {namespace}: creating" in first.stdout
    for pair in names:
        assert f"search attribute {pair.split('=')[0]}: registering" in first.stdout
    assert second.returncode == 0, second.stderr + second.stdout
    assert f"namespace {namespace}: exists" in second.stdout
    assert "registering" not in second.stdout
    listed = subprocess.run(
        [
            str(BIN / "temporal"),
            "operator",
            "search-attribute",
            "list",
            "--namespace",
            namespace,
            "--address",
            dev_server,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert all(pair.split("=")[0] in listed for pair in names)


def test_the_namespace_setup_fails_loudly_without_a_server() -> None:
    """No server: the script exits non-zero and says what it waited for."""
    from spark.devserver import free_port

    done = _run_setup(f"127.0.0.1:{free_port()}", "default", wait_s=2)

    assert done.returncode != 0
    assert "gave up waiting for the Temporal server" in done.stderr
