"""``make demo``: a private Temporal dev server, worker and database for the demo, then stop them.

The demo never touches a running ``make dev`` setup: its dev server listens on free ports (its
Web UI too) with its own SQLite file, its worker polls its own task queue on its own database
(``.spark/demo*.db``, recreated each run), and its graph and workflow ids are the demo's own
(``support-triage-demo``). Every process it starts (server, worker, demo) ends with it, also on
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from spark.devserver import start_on_free_ports, stop

STATE = Path(".spark")
DEMO_TASK_QUEUE = "spark-rsi-demo"


def _fresh(path: Path) -> Path:
    """``path`` with any earlier SQLite file (and its WAL and shared-memory files) removed."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def demo_environment(address: str, ui_url: str, database: Path) -> dict[str, str]:
    """The environment of the demo's worker and driver: the private server, queue, database."""
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_NAMESPACE": "default",
        "SPARK_TASK_QUEUE": DEMO_TASK_QUEUE,
        "SPARK_DATABASE_URL": f"sqlite:///{database}",
        "SPARK_DEMO_WEB_UI": ui_url,
    }


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    """Run the demo on its own stack; returns its exit code."""
    STATE.mkdir(exist_ok=True)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # run the finally blocks below
    server, port, ui_port = start_on_free_ports(
        _fresh(STATE / "demo-temporal.db"), with_ui=True, log_file=STATE / "demo-temporal.log"
    )
    children: list[subprocess.Popen[bytes]] = [server]
    try:
        env = demo_environment(
            f"127.0.0.1:{port}", f"http://localhost:{ui_port}", _fresh(STATE / "demo.db")
        )
        log = open(STATE / "demo-worker.log", "ab")  # noqa: SIM115 - owned by the worker process
        children.append(
            subprocess.Popen([sys.executable, "-m", "spark.worker"], env=env, stderr=log)
        )
        children.append(subprocess.Popen([sys.executable, "-m", "examples.demo"], env=env))
        return children[-1].wait()
    except KeyboardInterrupt:
        return 130
    finally:
        for child in reversed(children):
            stop(child)


if __name__ == "__main__":
    raise SystemExit(main())
