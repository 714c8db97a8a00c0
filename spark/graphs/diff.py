"""Differences between two versions of a graph, in five formats.

``diff_graphs(old, new)`` compares two specs: nodes added and removed (by id), nodes changed with
one ``FieldChange`` per differing field (nested config and params fields by their dotted path,
lists and scalars as a whole), edges added and removed (by ``(source, target)``), edges whose
condition changed, and graph-level fields (entry, inputs, metadata). ``render`` turns it into:

- ``text``: a summary line and one line per change, for a terminal;
- ``unified``: ``difflib`` unified diff of the two specs' canonical JSON (sorted keys, indent 2);
- ``json``: the structured diff (``GraphDiff``) as JSON;
- ``mermaid``: a ``flowchart TD`` of the new graph plus what was removed, nodes and edges styled
  ``added`` / ``changed`` / ``removed``;
- ``html``: one self-contained page (inline CSS, no scripts, no external assets) with the summary,
  the changes, the unified diff and the Mermaid source.
"""

from __future__ import annotations

import difflib
import html
import json
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from spark.errors import InvalidInputError
from spark.graphs.spec import EdgeCondition, EdgeSpec, GraphSpec, NodeSpec

DiffFormat = Literal["text", "unified", "json", "mermaid", "html"]
DIFF_FORMATS: tuple[str, ...] = get_args(DiffFormat)
_GRAPH_FIELDS = ("id", "entry", "entry_nodes", "inputs", "metadata")


class FieldChange(BaseModel):
    """One field that differs: its dotted path, the old and the new value (None when absent)."""

    model_config = ConfigDict(extra="forbid")

    path: str
    old: Any = None
    new: Any = None


class NodeChange(BaseModel):
    """A node present in both versions whose spec differs."""

    model_config = ConfigDict(extra="forbid")

    node_id: str
    changes: list[FieldChange]


class EdgeChange(BaseModel):
    """An edge present in both versions whose condition differs."""

    model_config = ConfigDict(extra="forbid")

    source: str
    target: str
    old_condition: EdgeCondition | None = None
    new_condition: EdgeCondition | None = None


class GraphDiff(BaseModel):
    """Everything that differs between two versions of a graph."""

    model_config = ConfigDict(extra="forbid")

    graph_id: str
    old_label: str
    new_label: str
    nodes_added: list[NodeSpec] = Field(default_factory=list)
    nodes_removed: list[NodeSpec] = Field(default_factory=list)
    nodes_changed: list[NodeChange] = Field(default_factory=list)
    edges_added: list[EdgeSpec] = Field(default_factory=list)
    edges_removed: list[EdgeSpec] = Field(default_factory=list)
    edges_changed: list[EdgeChange] = Field(default_factory=list)
    graph_changes: list[FieldChange] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Whether the two versions are the same graph."""
        return not self.counts() and not self.graph_changes

    def counts(self) -> dict[str, int]:
        """How many of each kind of change (kinds with none left out)."""
        counts = {
            "nodes added": len(self.nodes_added),
            "nodes removed": len(self.nodes_removed),
            "nodes changed": len(self.nodes_changed),
            "edges added": len(self.edges_added),
            "edges removed": len(self.edges_removed),
            "edges changed": len(self.edges_changed),
        }
        return {kind: n for kind, n in counts.items() if n}

    def summary(self) -> str:
        """``2 nodes changed, 1 edge added`` or ``no differences``."""
        parts = [f"{n} {_plural(kind, n)}" for kind, n in self.counts().items()]
        if self.graph_changes:
            parts.append(f"{len(self.graph_changes)} graph field(s) changed")
        return ", ".join(parts) or "no differences"


def _plural(kind: str, count: int) -> str:
    """``nodes added`` as ``node added`` for one."""
    noun, verb = kind.split(" ", 1)
    return kind if count != 1 else f"{noun[:-1]} {verb}"


# ----- computing the diff -----


def diff_graphs(
    old: GraphSpec, new: GraphSpec, *, old_label: str = "old", new_label: str = "new"
) -> GraphDiff:
    """What changed from ``old`` to ``new`` (see the module docstring)."""
    old_nodes, new_nodes = {n.id: n for n in old.nodes}, {n.id: n for n in new.nodes}
    old_edges, new_edges = {e.key: e for e in old.edges}, {e.key: e for e in new.edges}
    return GraphDiff(
        graph_id=new.id,
        old_label=old_label,
        new_label=new_label,
        nodes_added=[new_nodes[i] for i in new_nodes if i not in old_nodes],
        nodes_removed=[old_nodes[i] for i in old_nodes if i not in new_nodes],
        nodes_changed=_node_changes(old_nodes, new_nodes),
        edges_added=[new_edges[k] for k in new_edges if k not in old_edges],
        edges_removed=[old_edges[k] for k in old_edges if k not in new_edges],
        edges_changed=_edge_changes(old_edges, new_edges),
        graph_changes=field_changes(_graph_fields(old), _graph_fields(new)),
    )


def _graph_fields(spec: GraphSpec) -> dict[str, Any]:
    return {
        name: value for name, value in spec.model_dump(mode="json").items() if name in _GRAPH_FIELDS
    }


def _node_changes(old: Mapping[str, NodeSpec], new: Mapping[str, NodeSpec]) -> list[NodeChange]:
    changes = []
    for node_id in (i for i in new if i in old):
        fields = field_changes(
            old[node_id].model_dump(mode="json"), new[node_id].model_dump(mode="json")
        )
        if fields:
            changes.append(NodeChange(node_id=node_id, changes=fields))
    return changes


def _edge_changes(
    old: Mapping[tuple[str, str], EdgeSpec], new: Mapping[tuple[str, str], EdgeSpec]
) -> list[EdgeChange]:
    return [
        EdgeChange(
            source=key[0],
            target=key[1],
            old_condition=old[key].condition,
            new_condition=edge.condition,
        )
        for key, edge in new.items()
        if key in old and old[key].condition != edge.condition
    ]


def field_changes(old: Any, new: Any, path: str = "") -> list[FieldChange]:
    """Field-level differences: mappings are compared key by key (dotted paths), anything else
    as a whole value."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        changes: list[FieldChange] = []
        for key in sorted(set(old) | set(new), key=str):
            child = f"{path}.{key}" if path else str(key)
            changes += field_changes(old.get(key), new.get(key), child)
        return changes
    return [] if old == new else [FieldChange(path=path, old=old, new=new)]


# ----- formats -----


def render(
    fmt: str, old: GraphSpec, new: GraphSpec, *, old_label: str = "old", new_label: str = "new"
) -> str:
    """The diff from ``old`` to ``new`` in ``fmt`` (one of ``DIFF_FORMATS``)."""
    if fmt not in _RENDERERS:
        raise InvalidInputError(f"unknown diff format {fmt!r}; choose one of {list(DIFF_FORMATS)}")
    diff = diff_graphs(old, new, old_label=old_label, new_label=new_label)
    return _RENDERERS[fmt](old, new, diff)


def render_text(diff: GraphDiff) -> str:
    """A summary line, then one line per change (``+`` added, ``-`` removed, ``~`` changed)."""
    lines = [f"graph {diff.graph_id!r}: {diff.old_label} -> {diff.new_label}: {diff.summary()}"]
    lines += [f"~ graph {c.path}: {_short(c.old)} -> {_short(c.new)}" for c in diff.graph_changes]
    lines += [f"+ node {n.id!r} ({n.type})" for n in diff.nodes_added]
    lines += [f"- node {n.id!r} ({n.type})" for n in diff.nodes_removed]
    for change in diff.nodes_changed:
        lines += [
            f"~ node {change.node_id!r} {c.path}: {_short(c.old)} -> {_short(c.new)}"
            for c in change.changes
        ]
    lines += [f"+ edge {_edge_text(e.source, e.target, e.condition)}" for e in diff.edges_added]
    lines += [f"- edge {_edge_text(e.source, e.target, e.condition)}" for e in diff.edges_removed]
    lines += [
        f"~ edge {e.source!r}->{e.target!r} condition: {describe_condition(e.old_condition)} -> "
        f"{describe_condition(e.new_condition)}"
        for e in diff.edges_changed
    ]
    return "\n".join(lines) + "\n"


def render_unified(old: GraphSpec, new: GraphSpec, diff: GraphDiff) -> str:
    """A unified diff of the canonical JSON of both specs (empty when they are equal)."""
    lines = difflib.unified_diff(
        _pretty(old).splitlines(keepends=True),
        _pretty(new).splitlines(keepends=True),
        fromfile=f"{old.id}@{diff.old_label}",
        tofile=f"{new.id}@{diff.new_label}",
    )
    return "".join(lines)


def render_json(diff: GraphDiff) -> str:
    """The structured diff as JSON, with the counts and summary up front."""
    data = {"summary": diff.summary(), "counts": diff.counts(), **diff.model_dump(mode="json")}
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def _pretty(spec: GraphSpec) -> str:
    return json.dumps(spec.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def describe_condition(condition: EdgeCondition | None) -> str:
    """``field op value`` (``always`` for an unconditional edge)."""
    if condition is None:
        return "always"
    if condition.op in ("truthy", "falsy"):
        return f"{condition.field} {condition.op}"
    return f"{condition.field} {condition.op} {json.dumps(condition.value)}"


def _edge_text(source: str, target: str, condition: EdgeCondition | None) -> str:
    suffix = "" if condition is None else f" when {describe_condition(condition)}"
    return f"{source!r}->{target!r}{suffix}"


def _short(value: Any, limit: int = 80) -> str:
    text = "(absent)" if value is None else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----- Mermaid -----

MERMAID_CLASSES = {
    "added": "fill:#e6ffed,stroke:#2da44e,stroke-width:2px",
    "changed": "fill:#fff8c5,stroke:#bf8700,stroke-width:2px",
    "removed": "fill:#ffebe9,stroke:#cf222e,stroke-dasharray:5 5",
}
_LINK_STYLES = {
    "added": "stroke:#2da44e,stroke-width:2px",
    "changed": "stroke:#bf8700,stroke-width:2px",
    "removed": "stroke:#cf222e,stroke-dasharray:5 5",
}


def render_mermaid(old: GraphSpec, new: GraphSpec, diff: GraphDiff) -> str:
    """A ``flowchart TD`` of ``new`` plus the removed nodes and edges, each styled by status.

    Node ids become ``n0, n1, ...`` (graph ids may hold characters Mermaid reads as syntax);
    labels are quoted with ``"``, ``<``, ``>``, ``|`` and ``#`` written as Mermaid entities."""
    nodes = [*new.nodes, *diff.nodes_removed]
    ids = {node.id: f"n{index}" for index, node in enumerate(nodes)}
    status = _node_status(diff)
    lines = ["flowchart TD"]
    lines += [f'    {ids[n.id]}["{_mermaid_text(_node_label(n))}"]' for n in nodes]
    edges = [*new.edges, *diff.edges_removed]
    edge_status = _edge_status(diff)
    lines += [_mermaid_edge(e, ids, edge_status.get(e.key)) for e in edges]
    lines += [f"    classDef {name} {style}" for name, style in MERMAID_CLASSES.items()]
    for name in MERMAID_CLASSES:
        members = [ids[n] for n, s in status.items() if s == name]
        if members:
            lines.append(f"    class {','.join(members)} {name}")
    for index, edge in enumerate(edges):
        if edge.key in edge_status:
            lines.append(f"    linkStyle {index} {_LINK_STYLES[edge_status[edge.key]]}")
    return "\n".join(lines) + "\n"


def _node_status(diff: GraphDiff) -> dict[str, str]:
    status = {n.id: "added" for n in diff.nodes_added}
    status |= {c.node_id: "changed" for c in diff.nodes_changed}
    return status | {n.id: "removed" for n in diff.nodes_removed}


def _edge_status(diff: GraphDiff) -> dict[tuple[str, str], str]:
    status = {e.key: "added" for e in diff.edges_added}
    status |= {(e.source, e.target): "changed" for e in diff.edges_changed}
    return status | {e.key: "removed" for e in diff.edges_removed}


def _node_label(node: NodeSpec) -> str:
    return f"{node.id}\n({node.type})"


def _mermaid_edge(edge: EdgeSpec, ids: Mapping[str, str], status: str | None) -> str:
    arrow = "-.->" if status == "removed" else "-->"
    label = (
        "" if edge.condition is None else f'|"{_mermaid_text(describe_condition(edge.condition))}"|'
    )
    return f"    {ids[edge.source]} {arrow}{label} {ids[edge.target]}"


def _mermaid_text(text: str) -> str:
    """``text`` safe inside a quoted Mermaid label (entities for its special characters)."""
    entities = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "|": "#124;"}
    escaped = "".join(entities.get(ch, ch) for ch in text)
    return escaped.replace("\n", "<br/>")


# ----- HTML -----

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1f2328}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;margin:.4rem 0}td,th{border:1px solid #d0d7de;padding:.25rem .5rem;
text-align:left;vertical-align:top;font-family:ui-monospace,monospace;font-size:.85rem}
.added{background:#e6ffed}.removed{background:#ffebe9}.changed{background:#fff8c5}
pre{background:#f6f8fa;padding:.8rem;overflow:auto;font-size:.8rem}
pre span{display:block}.summary{font-weight:600}
""".strip()


def render_html(old: GraphSpec, new: GraphSpec, diff: GraphDiff) -> str:
    """One self-contained page: inline CSS, no script, no external reference."""
    title = f"Graph {new.id}: {diff.old_label} → {diff.new_label}"
    body = [
        f"<h1>{_esc(title)}</h1>",
        f'<p class="summary">{_esc(diff.summary())}</p>',
        *_html_sections(diff),
        "<h2>Unified diff</h2>",
        _html_unified(render_unified(old, new, diff)),
        "<h2>Mermaid</h2>",
        f"<pre>{_esc(render_mermaid(old, new, diff))}</pre>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _html_sections(diff: GraphDiff) -> list[str]:
    parts: list[str] = []
    if diff.graph_changes:
        parts += ["<h2>Graph</h2>", _html_fields(diff.graph_changes)]
    rows = [("added", f"{n.id} ({n.type})") for n in diff.nodes_added]
    rows += [("removed", f"{n.id} ({n.type})") for n in diff.nodes_removed]
    if rows or diff.nodes_changed:
        parts.append("<h2>Nodes</h2>")
        parts.append(_html_rows(rows))
        for change in diff.nodes_changed:
            parts += [f"<h3>{_esc(change.node_id)}</h3>", _html_fields(change.changes)]
    edges = [("added", _edge_text(e.source, e.target, e.condition)) for e in diff.edges_added]
    edges += [("removed", _edge_text(e.source, e.target, e.condition)) for e in diff.edges_removed]
    edges += [
        (
            "changed",
            f"{e.source!r}->{e.target!r}: {describe_condition(e.old_condition)} → "
            f"{describe_condition(e.new_condition)}",
        )
        for e in diff.edges_changed
    ]
    if edges:
        parts += ["<h2>Edges</h2>", _html_rows(edges)]
    return parts


def _html_rows(rows: list[tuple[str, str]]) -> str:
    if not rows:
        return ""
    cells = "".join(f'<tr class="{s}"><td>{s}</td><td>{_esc(t)}</td></tr>' for s, t in rows)
    return f"<table>{cells}</table>"


def _html_fields(changes: list[FieldChange]) -> str:
    head = "<tr><th>field</th><th>old</th><th>new</th></tr>"
    cells = "".join(
        f'<tr><td>{_esc(c.path)}</td><td class="removed">{_esc(_short(c.old, 400))}</td>'
        f'<td class="added">{_esc(_short(c.new, 400))}</td></tr>'
        for c in changes
    )
    return f"<table>{head}{cells}</table>"


def _html_unified(text: str) -> str:
    classes = {"+": "added", "-": "removed"}
    spans = []
    for line in text.splitlines():
        kind = "" if line.startswith(("+++", "---")) else classes.get(line[:1], "")
        attribute = f' class="{kind}"' if kind else ""
        spans.append(f"<span{attribute}>{_esc(line)}</span>")
    return f"<pre>{''.join(spans) or 'no differences'}</pre>"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


_RENDERERS: dict[str, Callable[[GraphSpec, GraphSpec, GraphDiff], str]] = {
    "text": lambda old, new, diff: render_text(diff),
    "unified": render_unified,
    "json": lambda old, new, diff: render_json(diff),
    "mermaid": render_mermaid,
    "html": render_html,
}
