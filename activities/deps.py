"""What activities need, built once per worker from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from spark.experience import ExperienceStore
from spark.graphs.registry import NodeRegistry, default_registry
from spark.registry import DeploymentStore, RegistryStore, RoutingStore
from spark.rsi.generator import HypothesisGenerator, RuleBasedGenerator
from spark.rsi.llm_generator import generator_from_settings
from spark.settings import SparkSettings
from spark.telemetry import TelemetryStore
from spark.telemetry.store import StatsSource


@dataclass
class ActivityDeps:
    """Stores, the node registry and the hypothesis generator, shared by all activities."""

    database_url: str
    telemetry: TelemetryStore
    registry: RegistryStore
    routing: RoutingStore
    deployments: DeploymentStore
    experience: ExperienceStore
    nodes: NodeRegistry = field(default_factory=default_registry)
    generator: HypothesisGenerator = field(default_factory=RuleBasedGenerator)
    # the worker's settings: the API keys a loop's own ``hypothesis_model`` is called with
    settings: SparkSettings | None = None
    # where analysis, online looks and health checks read aggregates: "auto" reads a graph's
    # rollups where spark_rollup_coverage says they are complete (a database new at migration
    # 0008, or a graph after TelemetryStore.rebuild_rollups), else raw spans; or force one
    stats_source: StatsSource = "auto"

    @classmethod
    def from_database_url(
        cls,
        database_url: str,
        *,
        settings: SparkSettings | None = None,
        generator: HypothesisGenerator | None = None,
    ) -> ActivityDeps:
        """Open every store on one database (SQLite file or PostgreSQL). The generator is
        ``generator`` when given, else the one ``settings`` select (``SPARK_GENERATOR``), else
        the rules; a missing API key raises ``ConfigurationError`` before any store opens."""
        if generator is None:
            generator = generator_from_settings(settings) if settings else RuleBasedGenerator()
        return cls(
            database_url=database_url,
            telemetry=TelemetryStore(database_url),
            registry=RegistryStore(database_url),
            routing=RoutingStore(database_url),
            deployments=DeploymentStore(database_url),
            experience=ExperienceStore(database_url),
            generator=generator,
            settings=settings,
        )
