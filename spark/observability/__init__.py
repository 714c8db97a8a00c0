"""Prometheus metrics of the worker and of the production client.

The worker (``spark-worker``) serves ``/metrics`` on ``SPARK_METRICS_ADDRESS`` (``host:port``,
e.g. ``0.0.0.0:9464``; unset: no endpoint) through the Temporal SDK's own Prometheus exporter
(``spark.observability.runtime``): the SDK's runtime metrics (``temporal_*``: workflow and
activity task latencies, pollers, slots, sticky cache...) and the loop's own, emitted from the
workflow (``workflows.metrics``). A process serving requests with ``SparkClient`` exposes its
telemetry queue through ``prometheus_client`` (``spark.observability.client_metrics``).

=================================  =========  ============================  ===================
name                               type       labels (besides the SDK's)    what it counts
=================================  =========  ============================  ===================
``spark_cycles_total``             counter    graph_id                      RSI cycles finished
``spark_decisions_total``          counter    graph_id, outcome             cycles by decision
                                                                            (shipped,
                                                                            rolled_back,
                                                                            rejected_test, ...)
``spark_hypotheses_total``         counter    graph_id, kind                hypotheses proposed,
                                                                            by change operations
``spark_deployments_total``        counter    graph_id, strategy            candidates switched
                                                                            to all traffic
``spark_rollbacks_total``          counter    graph_id, trigger             rollbacks (signal:
                                                                            asked; health:
                                                                            regression found)
``spark_review_wait_seconds``      histogram  graph_id, verdict             review open to
                                                                            decision (approved,
                                                                            rejected, expired)
``spark_telemetry_queue_depth``    gauge      source                        runs queued, not yet
                                                                            written (client)
``spark_telemetry_submitted_total`` counter   source                        runs queued (client)
``spark_telemetry_written_total``  counter    source                        runs written
``spark_telemetry_dropped_total``  counter    source, reason                runs lost for good:
                                                                            refused (queue full
                                                                            or closed), failed
                                                                            (rejected by the
                                                                            database), abandoned
                                                                            (at close)
``spark_telemetry_write_errors_total`` counter source                      failed write attempts
=================================  =========  ============================  ===================

The workflow metrics carry the SDK's ``namespace``, ``task_queue`` and ``workflow_type`` labels
too, and count once per event however often a worker replays the history.
"""
