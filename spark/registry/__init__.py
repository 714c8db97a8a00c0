"""The registry: immutable graph versions with lineage, routing, deployments and reviews."""

from spark.registry.deployments import (
    DeploymentRecord,
    DeploymentStatus,
    DeploymentStore,
    DeploymentStrategy,
    deployment_id_for,
)
from spark.registry.reviews import ReviewRecord, ReviewStatus, ReviewStore
from spark.registry.routing import (
    Arm,
    RoutingAction,
    RoutingCache,
    RoutingEvent,
    RoutingReader,
    RoutingState,
    RoutingStore,
    assign_arm,
)
from spark.registry.versions import GraphVersion, RegisteredGraph, RegistryStore, version_id_for

__all__ = [
    "Arm",
    "DeploymentRecord",
    "DeploymentStatus",
    "DeploymentStore",
    "DeploymentStrategy",
    "GraphVersion",
    "RegisteredGraph",
    "RegistryStore",
    "ReviewRecord",
    "ReviewStatus",
    "ReviewStore",
    "RoutingAction",
    "RoutingCache",
    "RoutingEvent",
    "RoutingReader",
    "RoutingState",
    "RoutingStore",
    "assign_arm",
    "deployment_id_for",
    "version_id_for",
]
