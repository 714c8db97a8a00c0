"""OpenTelemetry in: OTLP/HTTP traces of an instrumented application into the telemetry tables.

An application already instrumented with OpenTelemetry (GenAI semantic conventions) exports its
traces to ``POST /v1/traces`` (``spark otlp serve``, port 4318 by default; protobuf or JSON, gzip
or not). Each OTLP trace is one run of a graph: its root span is the run (``spark_traces``), its
other spans are node executions (``spark_spans``). The RSI loop then analyses and improves that
graph like any other, and the application reads its routed node configuration back with
``SparkClient.node_config``.

Attributes read (a span's own attribute wins over its resource's):

=========================  ===================================  ==================================
attribute                  becomes                              default
=========================  ===================================  ==================================
``spark.graph.id``         the graph id                         resource ``service.name``
``spark.version.id``       the version id                       the graph's active version when
                                                                registered, else ``service.version``,
                                                                else ``unversioned``
``spark.node.id``          the node id                          the span name
``spark.node.type``        the node type                        ``gen_ai.operation.name``, else
                                                                ``otlp``
``spark.routing.arm``      the run's arm (active, candidate,    ``direct``
                           replay, direct)
``spark.routing.key``      the run's routing key                none
``gen_ai.usage.input_tokens`` + ``gen_ai.usage.output_tokens``  the span's tokens (also the older
                                                                ``prompt_tokens`` /
                                                                ``completion_tokens``)
``spark.cost``             the span's cost (USD); a run costs   0
                           the sum of its stored spans
``spark.attempts``         the span's attempts                  1
``spark.cache_hit``        the span's cache hit                 false
span status ``ERROR``      status ``error``, with ``error.type``  ``error.type``, else the
                           (else an ``exception`` event's       status message, else ``Error``
                           ``exception.type``)
=========================  ===================================  ==================================

``gen_ai.request.model`` and ``gen_ai.system`` are not stored per span (the model of a node is
in its configuration); a root span is also recorded as a node span when it carries
``spark.node.id``. Spans may arrive before their root (exporters send batches as spans end):
they are stored at once, and the run when its root arrives.
"""
