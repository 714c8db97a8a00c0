"""Names of Spark's own metrics (the table in ``spark.observability`` says what each counts)."""

from __future__ import annotations

CYCLES = "spark_cycles_total"
DECISIONS = "spark_decisions_total"
HYPOTHESES = "spark_hypotheses_total"
DEPLOYMENTS = "spark_deployments_total"
ROLLBACKS = "spark_rollbacks_total"
REVIEW_WAIT = "spark_review_wait_seconds"

TELEMETRY_QUEUE_DEPTH = "spark_telemetry_queue_depth"
TELEMETRY_SUBMITTED = "spark_telemetry_submitted"
TELEMETRY_WRITTEN = "spark_telemetry_written"
TELEMETRY_DROPPED = "spark_telemetry_dropped"
TELEMETRY_WRITE_ERRORS = "spark_telemetry_write_errors"
