"""Alembic migrations: an older database is upgraded in place with its data, the head revision
matches the models, concurrent first opens migrate once, and revisions downgrade."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, insert, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from spark.db import get_engine, is_postgres, normalize_url
from spark.errors import ConfigurationError
from spark.migrations import (
    LEGACY_REVISION,
    VERSION_TABLE,
    VERSIONS,
    head_revision,
    include_name,
    runner,
    target_metadata,
)
from spark.registry import RegistryStore, RoutingStore
from spark.registry.versions import version_id_for
from tests.registry.conftest import make_spec

LEGACY_SCHEMA = Path(__file__).parent / "legacy_schema"
GRAPH = "support-triage"
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
BASE_SPEC, CANDIDATE_SPEC = make_spec(), make_spec("Classify the ticket, briefly.")
BASE, CANDIDATE = version_id_for(BASE_SPEC), version_id_for(CANDIDATE_SPEC)


@contextmanager
def _transaction(url: str) -> Iterator[Connection]:
    """A connection in one committed transaction, on an engine of its own (not get_engine's)."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def _build_previous_release(url: str) -> None:
    """The database ``create_all`` made at 6c764c0: its DDL as dumped from that commit."""
    dialect = "postgresql" if is_postgres(url) else "sqlite"
    ddl = (LEGACY_SCHEMA / f"6c764c0_{dialect}.sql").read_text()
    lines = [line for line in ddl.splitlines() if not line.startswith("--")]
    with _transaction(url) as connection:
        for statement in "\n".join(lines).split(";"):
            if statement.strip():
                connection.exec_driver_sql(statement)


def _insert_previous_release_rows(url: str) -> None:
    """A graph with two versions, routing with a candidate and its event, two traces, a span."""
    with _transaction(url) as connection:
        tables = MetaData()
        tables.reflect(connection)
        rows: dict[str, list[dict[str, Any]]] = {
            "spark_graphs": [
                {"graph_id": GRAPH, "node_modules": ["nodes"], "owner": "me", "created_at": WHEN}
            ],
            "spark_versions": [_version(BASE_SPEC, None), _version(CANDIDATE_SPEC, BASE)],
            "spark_routing": [
                {
                    "graph_id": GRAPH,
                    "active_version_id": BASE,
                    "candidate_version_id": CANDIDATE,
                    "candidate_share": 0.25,
                    "revision": 2,
                    "updated_at": WHEN,
                }
            ],
            "spark_routing_events": [_routing_event("c1:set", "set_candidate", revision=2)],
            "spark_traces": [_trace("t-1", 0.9), _trace("t-2", None)],
            "spark_spans": [_span("s-1", "t-1")],
        }
        for table, values in rows.items():
            connection.execute(insert(tables.tables[table]), values)


def _version(spec: Any, parent: str | None) -> dict[str, Any]:
    return {
        "version_id": version_id_for(spec),
        "graph_id": GRAPH,
        "parent_id": parent,
        "spec_json": spec.canonical_json(),
        "hypothesis_id": None,
        "author": "me",
        "note": "",
        "created_at": WHEN,
    }


def _routing_event(key: str, action: str, revision: int) -> dict[str, Any]:
    return {
        "graph_id": GRAPH,
        "idempotency_key": key,
        "action": action,
        "active_version_id": BASE,
        "candidate_version_id": CANDIDATE,
        "candidate_share": 0.25,
        "revision": revision,
        "actor": "rsi",
        "reason": "window",
        "at": WHEN,
    }


def _trace(trace_id: str, quality: float | None) -> dict[str, Any]:
    return {
        "trace_id": trace_id,
        "graph_id": GRAPH,
        "version_id": BASE,
        "started_at": 1.0e9,
        "duration_ms": 12.5,
        "status": "ok",
        "routing_arm": "direct",
        "cost": 0.01,
        "quality": quality,
    }


def _span(span_id: str, trace_id: str) -> dict[str, Any]:
    return {
        "span_id": span_id,
        "trace_id": trace_id,
        "graph_id": GRAPH,
        "version_id": BASE,
        "node_id": "classify",
        "node_type": "llm",
        "started_at": 1.0e9,
        "duration_ms": 3.0,
        "status": "ok",
        "attempts": 1,
        "cache_hit": False,
        "tokens": 7,
        "cost": 0.01,
        "output_json": '{"label": "billing"}',
    }


def _revisions(url: str) -> list[str]:
    with _transaction(url) as connection:
        return list(connection.scalars(text(f"SELECT version_num FROM {VERSION_TABLE}")))


def _columns(url: str, table: str) -> list[str]:
    with _transaction(url) as connection:
        return [column["name"] for column in inspect(connection).get_columns(table)]


def _schema(connection: Connection) -> dict[str, Any]:
    """Everything the database says about Spark's tables: columns in order with types and
    nullability, keys, unique constraints, and each index's full definition."""
    inspector = inspect(connection)
    tables = sorted(set(inspector.get_table_names()) - {VERSION_TABLE})
    return {
        "tables": {
            table: {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
                ],
                "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
                "unique": sorted(
                    u["column_names"] for u in inspector.get_unique_constraints(table)
                ),
            }
            for table in tables
        },
        "indexes": _index_definitions(connection),
    }


def _index_definitions(connection: Connection) -> list[str]:
    if connection.dialect.name == "sqlite":
        query = (
            "SELECT name || ': ' || sql FROM sqlite_master "
            "WHERE type = 'index' AND sql IS NOT NULL AND tbl_name != :version_table"
        )
    else:
        query = (
            "SELECT indexname || ': ' || replace(indexdef, schemaname || '.', '') FROM pg_indexes "
            "WHERE schemaname = current_schema() AND tablename != :version_table"
        )
    rows = connection.scalars(text(query), {"version_table": VERSION_TABLE})
    return sorted(" ".join(row.split()) for row in rows)


def _reset(connection: Connection) -> None:
    tables = MetaData()
    tables.reflect(connection)
    tables.drop_all(connection)


def test_revision_0001_is_the_schema_create_all_made_at_the_previous_release(
    database_url: str,
) -> None:
    """Revision 0001 creates exactly the tables, columns, keys and indexes that ``create_all``
    made at 6c764c0, so stamping such a database at 0001 tells the truth."""
    _build_previous_release(database_url)
    with _transaction(database_url) as connection:
        previous_release = _schema(connection)
        _reset(connection)
        command.upgrade(runner.alembic_config(connection), LEGACY_REVISION)
        assert _schema(connection) == previous_release
    assert len(previous_release["tables"]) == 13 and len(previous_release["indexes"]) >= 15


def test_database_of_the_previous_release_is_upgraded_with_its_data(database_url: str) -> None:
    """A database made by ``create_all`` (no version table) is stamped and upgraded on first
    open; its graphs, versions, routing, events and telemetry are kept, and the new routing
    expiry is written and read back through the routing store."""
    _build_previous_release(database_url)
    _insert_previous_release_rows(database_url)

    get_engine(database_url)

    assert _revisions(database_url) == [head_revision()]
    assert RegistryStore(database_url).get_version(CANDIDATE).parent_id == BASE
    routing = RoutingStore(database_url)
    state = routing.get(GRAPH)
    assert (state.active_version_id, state.candidate_version_id) == (BASE, CANDIDATE)
    assert (state.candidate_share, state.revision, state.candidate_expires_at) == (0.25, 2, None)
    expires = WHEN + timedelta(days=30)
    routing.apply(
        GRAPH,
        idempotency_key="c2:set",
        action="set_candidate",
        candidate_share=0.5,
        candidate_expires_at=expires,
        actor="rsi",
        reason="window",
    )
    assert routing.get(GRAPH).serving_share(expires - timedelta(seconds=1)) == 0.5
    assert routing.get(GRAPH).serving_share(expires) == 0.0
    old_event, new_event = routing.history(GRAPH)
    assert (old_event.idempotency_key, old_event.candidate_expires_at) == ("c1:set", None)
    assert new_event.candidate_expires_at is not None
    assert new_event.candidate_expires_at.replace(tzinfo=UTC) == expires
    with get_engine(database_url).connect() as connection:
        traces = connection.execute(text("SELECT trace_id, quality FROM spark_traces")).all()
        span = connection.execute(text("SELECT output_json, tokens FROM spark_spans")).one()
    assert sorted(map(tuple, traces)) == [("t-1", 0.9), ("t-2", None)]
    assert tuple(span) == ('{"label": "billing"}', 7)


def test_models_match_the_head_revision(database_url: str) -> None:
    """Alembic's autogenerate comparison finds no difference between the table models and a
    database migrated to the head: a model change without its migration fails here."""
    get_engine(database_url)
    with _transaction(database_url) as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "version_table": VERSION_TABLE,
                "compare_type": True,
                "include_name": include_name,
            },
        )
        differences = compare_metadata(context, target_metadata(connection.dialect.name))
    assert differences == []


def test_revision_files_form_one_line_named_by_number() -> None:
    """Each file in ``versions/`` is named after its revision and revises the one before, so the
    head read from file names (without Alembic) is Alembic's head."""
    scripts = ScriptDirectory(str(VERSIONS.parent))
    chain = [script.revision for script in scripts.walk_revisions("base", "heads")][::-1]
    assert chain[0] == LEGACY_REVISION
    assert chain == [f"{number:04d}" for number in range(1, len(chain) + 1)]
    assert scripts.get_heads() == [head_revision()]
    for revision in chain:
        assert len(list(VERSIONS.glob(f"{revision}_*.py"))) == 1


def _open(url: str) -> None:
    get_engine(url)


def _open_concurrently(url: str, processes: int = 3) -> list[int | None]:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_open, args=(url,)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    return [worker.exitcode for worker in workers]


def test_processes_opening_a_new_database_at_once_all_succeed(database_url: str) -> None:
    """Three processes opening an empty database at the same moment all succeed, and the
    migrations ran once: one version row, at the head."""
    assert _open_concurrently(database_url) == [0, 0, 0]
    assert _revisions(database_url) == [head_revision()]
    assert "candidate_expires_at" in _columns(database_url, "spark_routing_events")


def test_processes_opening_a_previous_release_database_at_once_all_succeed(
    database_url: str,
) -> None:
    """Three processes opening a database of the previous release at once all succeed; it is
    stamped and upgraded once and keeps its rows."""
    _build_previous_release(database_url)
    _insert_previous_release_rows(database_url)
    assert _open_concurrently(database_url) == [0, 0, 0]
    assert _revisions(database_url) == [head_revision()]
    assert RoutingStore(database_url).get(GRAPH).candidate_version_id == CANDIDATE


def test_downgrade_of_0002_drops_the_expiry_and_keeps_the_rest(database_url: str) -> None:
    """Going back to 0001 drops ``candidate_expires_at`` from both routing tables while their
    rows, the index and the unique idempotency key survive (SQLite rebuilds the tables); the
    next open upgrades again."""
    get_engine(database_url)
    _seed_routing(database_url)
    events_before = _routing_event_keys(database_url)
    with _transaction(database_url) as connection:
        runner.downgrade(connection, "0001")
    assert _revisions(database_url) == ["0001"]
    for table in ("spark_routing", "spark_routing_events"):
        assert "candidate_expires_at" not in _columns(database_url, table)
    assert _routing_event_keys(database_url) == events_before
    assert "c1:set" in events_before
    with _transaction(database_url) as connection:
        indexes = inspect(connection).get_indexes("spark_routing_events")
        names = [index["name"] for index in indexes if not index.get("duplicates_constraint")]
        assert names == ["ix_spark_routing_events_graph_id"]
    with pytest.raises(IntegrityError), _transaction(database_url) as connection:
        connection.execute(insert(_reflected(connection, "spark_routing_events")), _duplicate())
    with _transaction(database_url) as connection:
        command.upgrade(runner.alembic_config(connection), "head")
    assert _revisions(database_url) == [head_revision()]


def _seed_routing(url: str) -> None:
    registry = RegistryStore(url)
    registry.register_graph(BASE_SPEC, ["nodes"])
    registry.create_version(BASE, CANDIDATE_SPEC, author="rsi")
    RoutingStore(url).apply(
        GRAPH,
        idempotency_key="c1:set",
        action="set_candidate",
        candidate_version_id=CANDIDATE,
        candidate_share=0.25,
        candidate_expires_at=WHEN,
        actor="rsi",
        reason="window",
    )


def _routing_event_keys(url: str) -> list[str]:
    with _transaction(url) as connection:
        keys = connection.scalars(text("SELECT idempotency_key FROM spark_routing_events"))
        return sorted(keys)


def _reflected(connection: Connection, table: str) -> Any:
    tables = MetaData()
    tables.reflect(connection, only=[table])
    return tables.tables[table]


def _duplicate() -> dict[str, Any]:
    return _routing_event("c1:set", "set_candidate", revision=3)


def test_database_at_the_head_is_opened_without_loading_alembic(database_url: str) -> None:
    """Opening a database already at the head reads the version table and never imports
    Alembic (the request path does not pay for the migration machinery)."""
    get_engine(database_url)
    probe = (
        "import sys; from spark.db import get_engine; get_engine(sys.argv[1]); "
        "print('alembic' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, database_url], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_database_from_a_newer_spark_is_refused_with_a_clear_error(database_url: str) -> None:
    """A version table naming a revision this Spark does not have (a newer release migrated
    the database) raises ``ConfigurationError`` naming both revisions."""
    with _transaction(database_url) as connection:
        connection.execute(text(f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32))"))
        connection.execute(text(f"INSERT INTO {VERSION_TABLE} VALUES ('9999')"))
    with pytest.raises(ConfigurationError, match=r"'9999'.*upgrade spark-rsi"):
        get_engine(database_url)
