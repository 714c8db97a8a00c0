"""``make demo`` never shares anything with a ``make dev`` setup: not the server address, the
task queue, the database, nor the graph and workflow ids."""

from __future__ import annotations

from pathlib import Path

from examples import demo
from examples.run_demo import DEMO_TASK_QUEUE, demo_environment
from spark.settings import SparkSettings
from spark.temporal import rsi_workflow_id


def test_demo_environment_is_private() -> None:
    """The demo's worker and driver get their own address, queue and database, whatever the
    caller's environment says, and the demo's graph is not an example graph `make dev` runs."""
    dev = SparkSettings()
    env = demo_environment("127.0.0.1:40001", "http://localhost:40002", Path(".spark/demo.db"))
    assert env["TEMPORAL_ADDRESS"] != dev.temporal_address
    assert env["SPARK_TASK_QUEUE"] == DEMO_TASK_QUEUE != dev.task_queue
    assert env["SPARK_DATABASE_URL"] != dev.database_url
    assert demo.GRAPH_ID == "support-triage-demo"
    assert rsi_workflow_id(demo.GRAPH_ID) != rsi_workflow_id("support-triage")
