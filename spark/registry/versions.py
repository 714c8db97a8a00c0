"""Immutable graph versions with lineage, and the graphs they belong to.

A version is a ``GraphSpec`` frozen under a content-hash id: the same spec always gets the same
id, so registering or creating it twice is harmless (a retried activity stores it once). Nothing
is edited in place; a change is a new version whose parent is the version it came from.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from pydantic import BaseModel
from sqlmodel import Session, col, select

from spark.db import get_engine
from spark.errors import InvalidChangeError, UnknownGraphError, UnknownVersionError
from spark.graphs.spec import GraphSpec
from spark.registry._sql import read_session, retry_on_conflict, write_session
from spark.registry.tables import GraphRow, RoutingEventRow, RoutingRow, VersionRow

log = structlog.get_logger(__name__)


class GraphVersion(BaseModel):
    """One immutable version of a graph."""

    version_id: str
    graph_id: str
    parent_id: str | None
    spec: GraphSpec
    hypothesis_id: str | None
    author: str
    note: str
    created_at: datetime


class RegisteredGraph(BaseModel):
    """A registered graph: who owns it and where its node implementations live."""

    graph_id: str
    node_modules: list[str]
    owner: str
    created_at: datetime


def version_id_for(spec: GraphSpec) -> str:
    """The version id of a spec: ``"v-"`` and the first 16 hex digits of its content hash."""
    return "v-" + spec.content_hash()[:16]


class RegistryStore:
    """Graphs and their immutable versions, in the shared Spark database."""

    def __init__(self, database_url: str) -> None:
        self._engine = get_engine(database_url)

    def register_graph(
        self,
        spec: GraphSpec,
        node_modules: list[str],
        author: str = "user",
        owner: str | None = None,
    ) -> GraphVersion:
        """Register ``spec`` and return its version; idempotent.

        The first registration of a graph stores it with this version as its active version.
        Registering the same spec again returns the same version. Registering a changed spec of an
        existing graph stores a new version whose parent is the current active version and does
        NOT change routing: traffic moves only through the routing store. ``node_modules`` (and
        ``owner`` when given) replace the graph's stored values.
        """
        return retry_on_conflict(lambda: self._register(spec, node_modules, author, owner))

    def get_graph(self, graph_id: str) -> RegisteredGraph:
        """The registered graph ``graph_id``; ``UnknownGraphError`` when it is not registered."""
        with read_session(self._engine) as session:
            return RegisteredGraph.model_validate(
                _graph_row(session, graph_id), from_attributes=True
            )

    def create_version(
        self,
        parent_id: str,
        spec: GraphSpec,
        *,
        hypothesis_id: str | None = None,
        author: str,
        note: str = "",
    ) -> GraphVersion:
        """Store ``spec`` as a child of ``parent_id``; idempotent on content.

        When a version with identical content exists it is returned unchanged (versions are never
        edited). Raises ``UnknownVersionError`` for an unknown parent and ``InvalidChangeError``
        when the spec belongs to another graph than its parent.
        """
        return retry_on_conflict(
            lambda: self._create(
                parent_id, spec, hypothesis_id=hypothesis_id, author=author, note=note
            )
        )

    def get_version(self, version_id: str) -> GraphVersion:
        """The version ``version_id``; ``UnknownVersionError`` when none is stored."""
        with read_session(self._engine) as session:
            return _to_version(_version_row(session, version_id))

    def lineage(self, version_id: str) -> list[GraphVersion]:
        """The chain of versions from the root registration down to ``version_id`` itself."""
        with read_session(self._engine) as session:
            graph_id = _version_row(session, version_id).graph_id
            parents = dict(
                session.exec(
                    select(VersionRow.version_id, VersionRow.parent_id).where(
                        VersionRow.graph_id == graph_id
                    )
                ).all()
            )
            chain = _walk_to_root(version_id, parents)
            rows = session.exec(select(VersionRow).where(col(VersionRow.version_id).in_(chain)))
            by_id = {row.version_id: row for row in rows}
        return [_to_version(by_id[vid]) for vid in chain]

    def list_versions(self, graph_id: str) -> list[GraphVersion]:
        """Every version of ``graph_id``, oldest first; ``UnknownGraphError`` for an unknown graph."""
        with read_session(self._engine) as session:
            _graph_row(session, graph_id)
            rows = session.exec(
                select(VersionRow)
                .where(VersionRow.graph_id == graph_id)
                .order_by(col(VersionRow.created_at), col(VersionRow.version_id))
            ).all()
        return [_to_version(row) for row in rows]

    def _register(
        self, spec: GraphSpec, node_modules: list[str], author: str, owner: str | None
    ) -> GraphVersion:
        with write_session(self._engine) as session:
            graph = session.get(GraphRow, spec.id, with_for_update=True)
            if graph is None:
                return _first_registration(session, spec, node_modules, author, owner or author)
            _update_graph(graph, node_modules, owner)
            existing = session.get(VersionRow, version_id_for(spec))
            if existing is not None:
                return _to_version(existing)
            routing = session.get(RoutingRow, spec.id)
            parent_id = routing.active_version_id if routing is not None else None
            row = _new_version_row(spec, parent_id, None, author, "re-registered")
            session.add(row)
            return _to_version(row)

    def _create(
        self, parent_id: str, spec: GraphSpec, *, hypothesis_id: str | None, author: str, note: str
    ) -> GraphVersion:
        with write_session(self._engine) as session:
            parent = _version_row(session, parent_id)
            if parent.graph_id != spec.id:
                raise InvalidChangeError(
                    f"spec of graph {spec.id!r} cannot be a child of version {parent_id!r} "
                    f"of graph {parent.graph_id!r}"
                )
            existing = session.get(VersionRow, version_id_for(spec))
            if existing is not None:
                return _to_version(existing)
            row = _new_version_row(spec, parent_id, hypothesis_id, author, note)
            session.add(row)
            return _to_version(row)


def _first_registration(
    session: Session, spec: GraphSpec, node_modules: list[str], author: str, owner: str
) -> GraphVersion:
    """Store the graph, its root version, its routing and the routing event, in one transaction."""
    row = _new_version_row(spec, None, None, author, "registered")
    session.add(GraphRow(graph_id=spec.id, node_modules=list(node_modules), owner=owner))
    session.add(row)
    session.add(RoutingRow(graph_id=spec.id, active_version_id=row.version_id))
    session.add(
        RoutingEventRow(
            graph_id=spec.id,
            idempotency_key=f"{spec.id}:register",
            action="set_active",
            active_version_id=row.version_id,
            revision=1,
            actor=author,
            reason="graph registered",
        )
    )
    log.info("graph_registered", graph_id=spec.id, version_id=row.version_id, owner=owner)
    return _to_version(row)


def _update_graph(graph: GraphRow, node_modules: list[str], owner: str | None) -> None:
    if graph.node_modules != list(node_modules):
        graph.node_modules = list(node_modules)
    if owner is not None and graph.owner != owner:
        graph.owner = owner


def _new_version_row(
    spec: GraphSpec, parent_id: str | None, hypothesis_id: str | None, author: str, note: str
) -> VersionRow:
    row = VersionRow(
        version_id=version_id_for(spec),
        graph_id=spec.id,
        parent_id=parent_id,
        spec_json=spec.canonical_json(),
        hypothesis_id=hypothesis_id,
        author=author,
        note=note,
    )
    log.info("version_created", graph_id=spec.id, version_id=row.version_id, parent_id=parent_id)
    return row


def _graph_row(session: Session, graph_id: str) -> GraphRow:
    row = session.get(GraphRow, graph_id)
    if row is None:
        raise UnknownGraphError(f"no graph registered under {graph_id!r}")
    return row


def _version_row(session: Session, version_id: str) -> VersionRow:
    row = session.get(VersionRow, version_id)
    if row is None:
        raise UnknownVersionError(f"no graph version stored under {version_id!r}")
    return row


def _walk_to_root(version_id: str, parents: dict[str, str | None]) -> list[str]:
    chain = [version_id]
    while (parent := parents.get(chain[-1])) is not None and parent not in chain:
        chain.append(parent)
    return chain[::-1]


def _to_version(row: VersionRow) -> GraphVersion:
    return GraphVersion(
        version_id=row.version_id,
        graph_id=row.graph_id,
        parent_id=row.parent_id,
        spec=GraphSpec.model_validate_json(row.spec_json),
        hypothesis_id=row.hypothesis_id,
        author=row.author,
        note=row.note,
        created_at=row.created_at,
    )
