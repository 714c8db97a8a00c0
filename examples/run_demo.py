"""``make demo``: start what the demo needs on the embedded default, run it, stop what it started.

Starts the Temporal dev server (SQLite file under ``.spark/``) unless one already listens on
:7233, starts ``worker.py`` on a fresh demo database, runs ``examples.demo``, then stops both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from spark.devserver import port_open, start_dev_server, stop

STATE = Path(".spark")


def main() -> int:
    """Run the demo; returns its exit code."""
    STATE.mkdir(exist_ok=True)
    demo_db = STATE / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{demo_db}{suffix}").unlink(missing_ok=True)
    env = {**os.environ, "SPARK_DATABASE_URL": f"sqlite:///{demo_db}"}
    server = None if port_open("127.0.0.1", 7233) else start_dev_server(STATE / "temporal.db")
    log = open(STATE / "worker.log", "ab")  # noqa: SIM115 - owned by the worker process
    worker = subprocess.Popen([sys.executable, "worker.py"], env=env, stderr=log)
    try:
        return subprocess.call([sys.executable, "-m", "examples.demo"], env=env)
    finally:
        stop(worker)
        if server is not None:
            stop(server)


if __name__ == "__main__":
    raise SystemExit(main())
