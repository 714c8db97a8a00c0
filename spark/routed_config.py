"""A node's configuration as routing serves it, for applications that run their own code.

An application instrumented with OpenTelemetry (see ``spark.otlp``) never runs our runtime: it
asks which version serves a request, and with which node configuration, then tags its spans with
``spark.version.id`` and ``spark.routing.arm`` so the RSI loop can attribute them.
"""

from __future__ import annotations

from pydantic import BaseModel

from spark.errors import InvalidInputError
from spark.graphs.spec import NodeConfig
from spark.serving import VersionRouter
from spark.telemetry.models import RoutingArm


class RoutedNodeConfig(BaseModel):
    """The configuration of ``node_id`` in the version routed to one request."""

    graph_id: str
    node_id: str
    version_id: str
    arm: RoutingArm
    node_type: str
    config: NodeConfig

    def span_attributes(self) -> dict[str, str]:
        """The attributes to set on the request's spans (``spark.*``, see ``spark.otlp``)."""
        return {
            "spark.graph.id": self.graph_id,
            "spark.version.id": self.version_id,
            "spark.routing.arm": self.arm,
            "spark.node.id": self.node_id,
        }


def routed_node_config(
    router: VersionRouter, graph_id: str, node_id: str, routing_key: str | None
) -> RoutedNodeConfig:
    """Route the request (sticky per ``routing_key``) and read ``node_id``'s config in the version
    it gets; ``InvalidInputError`` when that version has no such node."""
    routed = router.route(graph_id, routing_key)
    node = next((n for n in routed.spec.nodes if n.id == node_id), None)
    if node is None:
        known = ", ".join(sorted(n.id for n in routed.spec.nodes))
        raise InvalidInputError(
            f"version {routed.version_id!r} of graph {graph_id!r} has no node {node_id!r} "
            f"(nodes: {known})"
        )
    return RoutedNodeConfig(
        graph_id=graph_id,
        node_id=node_id,
        version_id=routed.version_id,
        arm=routed.arm,
        node_type=node.type,
        config=node.config,
    )
