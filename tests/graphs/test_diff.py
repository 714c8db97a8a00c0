"""The graph differ: the structured diff, its five formats (the Mermaid one checked line by line
against the grammar it emits, the HTML one parsed and checked to be self-contained), and
``spark diff`` on versions stored in the registry."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from spark.cli import main
from spark.errors import InvalidInputError
from spark.graphs.diff import DIFF_FORMATS, diff_graphs, render
from spark.graphs.spec import GraphSpec, parse_graph_spec
from spark.registry import RegistryStore


def spec(**changes: object) -> GraphSpec:
    """a -> b -> c (b -> c only when ``kind`` is "x"); ``changes`` replaces top-level fields."""
    data: dict[str, object] = {
        "id": "g-1",
        "entry": "a",
        "inputs": ["q"],
        "nodes": [
            {"id": "a", "type": "fn", "inputs": ["q"], "outputs": ["kind"]},
            {"id": "b", "type": "llm", "inputs": ["kind"], "outputs": ["r"],
             "config": {"prompt": "Say <b>\"hi\"</b> | #1", "params": {"k": 1, "j": [1]}}},
            {"id": "c", "type": "fn", "inputs": ["r"], "outputs": ["out"]},
        ],
        "edges": [
            {"source": "a", "target": "b"},
            {"source": "b", "target": "c", "condition": {"field": "kind", "op": "eq", "value": "x"}},
        ],
    }  # fmt: skip
    data.update(changes)
    return parse_graph_spec(data)


def changed() -> GraphSpec:
    """b's prompt, model and one param changed, c removed, d added, a -> b now conditional."""
    return spec(
        nodes=[
            {"id": "a", "type": "fn", "inputs": ["q"], "outputs": ["kind"]},
            {"id": "b", "type": "llm2", "inputs": ["kind"], "outputs": ["r"],
             "config": {"prompt": "Say hi", "model": "m", "params": {"k": 2, "j": [1]}}},
            {"id": "d.new-1", "type": "fn", "inputs": ["r"], "outputs": ["out"]},
        ],
        edges=[
            {"source": "a", "target": "b", "condition": {"field": "kind", "op": "truthy"}},
            {"source": "b", "target": "d.new-1"},
        ],
    )  # fmt: skip


def test_the_structured_diff_names_every_change_down_to_config_fields() -> None:
    """Nodes and edges added, removed and changed; config fields by dotted path."""
    diff = diff_graphs(spec(), changed(), old_label="v1", new_label="v2")
    assert [n.id for n in diff.nodes_added] == ["d.new-1"]
    assert [n.id for n in diff.nodes_removed] == ["c"]
    (b,) = diff.nodes_changed
    assert {c.path: (c.old, c.new) for c in b.changes} == {
        "type": ("llm", "llm2"),
        "config.prompt": ('Say <b>"hi"</b> | #1', "Say hi"),
        "config.model": (None, "m"),
        "config.params.k": (1, 2),
    }
    assert [e.key for e in diff.edges_added] == [("b", "d.new-1")]
    assert [e.key for e in diff.edges_removed] == [("b", "c")]
    assert [(e.source, e.target) for e in diff.edges_changed] == [("a", "b")]
    assert diff.summary() == (
        "1 node added, 1 node removed, 1 node changed, 1 edge added, 1 edge removed, 1 edge changed"
    )


def test_equal_versions_have_an_empty_diff_in_every_format() -> None:
    """No differences: the text says so, the unified diff is empty, the JSON counts nothing."""
    assert diff_graphs(spec(), spec()).empty
    assert "no differences" in render("text", spec(), spec())
    assert render("unified", spec(), spec()) == ""
    assert json.loads(render("json", spec(), spec()))["counts"] == {}


def test_graph_level_fields_are_compared_too() -> None:
    """A changed graph input list and metadata show up as graph changes."""
    diff = diff_graphs(spec(), spec(inputs=["q", "z"], metadata={"owner": "x"}))
    assert [(c.path, c.new) for c in diff.graph_changes] == [
        ("inputs", ["q", "z"]),
        ("metadata.owner", "x"),
    ]


def test_text_lists_one_line_per_change() -> None:
    """+ added, - removed, ~ changed, conditions written out."""
    text = render("text", spec(), changed(), old_label="v1", new_label="v2")
    lines = text.splitlines()
    assert lines[0].startswith("graph 'g-1': v1 -> v2: ")
    assert "+ node 'd.new-1' (fn)" in lines
    assert "- node 'c' (fn)" in lines
    assert "~ node 'b' config.params.k: 1 -> 2" in lines
    assert "- edge 'b'->'c' when kind eq \"x\"" in lines
    assert "~ edge 'a'->'b' condition: always -> kind truthy" in lines


def test_unified_diffs_the_canonical_json() -> None:
    """A difflib unified diff with both labels, removing the old prompt and adding the new."""
    text = render("unified", spec(), changed(), old_label="v1", new_label="v2")
    assert text.startswith("--- g-1@v1\n+++ g-1@v2\n@@ ")
    assert '-        "prompt": "Say <b>\\"hi\\"</b> | #1",' in text.splitlines()
    assert '+        "prompt": "Say hi",' in text.splitlines()


def test_json_is_the_structured_diff() -> None:
    """The JSON parses back into the same changes."""
    data = json.loads(render("json", spec(), changed()))
    assert data["counts"]["nodes added"] == 1
    assert data["nodes_changed"][0]["node_id"] == "b"
    assert data["edges_removed"] == [
        {"source": "b", "target": "c", "condition": {"field": "kind", "op": "eq", "value": "x"}}
    ]


MERMAID_LINE = {
    "header": re.compile(r"^flowchart TD$"),
    "node": re.compile(r'^    (n\d+)\["([^"\[\]]*)"\]$'),
    "edge": re.compile(r'^    (n\d+) (-->|-\.->)(?:\|"([^"|]*)"\|)? (n\d+)$'),
    "classDef": re.compile(r"^    classDef (added|changed|removed) [a-z-]+:[^;\s]+(,[a-z-]+:[^;,]+)*$"),
    "class": re.compile(r"^    class (n\d+(?:,n\d+)*) (added|changed|removed)$"),
    "linkStyle": re.compile(r"^    linkStyle (\d+) [a-z-]+:[^;\s]+(,[a-z-]+:[^;,]+)*$"),
}  # fmt: skip


def parse_mermaid(text: str) -> dict[str, list[re.Match[str]]]:
    """Every line matched to exactly one statement form (fails on any other line)."""
    parsed: dict[str, list[re.Match[str]]] = {kind: [] for kind in MERMAID_LINE}
    for line in text.splitlines():
        matches = [(k, m) for k, p in MERMAID_LINE.items() if (m := p.match(line))]
        assert len(matches) == 1, f"not a Mermaid statement we emit: {line!r}"
        parsed[matches[0][0]].append(matches[0][1])
    return parsed


def test_mermaid_draws_the_new_graph_with_changes_styled() -> None:
    """Every line parses; ids are safe, labels escaped; removed parts are dashed; classes and
    link styles point at existing nodes and edges."""
    parsed = parse_mermaid(render("mermaid", spec(), changed()))
    assert len(parsed["header"]) == 1
    labels = {m.group(2): m.group(1) for m in parsed["node"]}
    ids = set(labels.values())
    assert set(labels) == {"a<br/>(fn)", "b<br/>(llm2)", "d.new-1<br/>(fn)", "c<br/>(fn)"}
    edges = [(m.group(1), m.group(2), m.group(3), m.group(4)) for m in parsed["edge"]]
    assert all(source in ids and target in ids for source, _, _, target in edges)
    node = {label.split("<br/>")[0]: i for label, i in labels.items()}
    assert (node["b"], "-.->", "kind eq #quot;x#quot;", node["c"]) in edges
    classes = {m.group(2): set(m.group(1).split(",")) for m in parsed["class"]}
    assert classes == {"added": {node["d.new-1"]}, "changed": {node["b"]}, "removed": {node["c"]}}
    styled = {int(m.group(1)) for m in parsed["linkStyle"]}
    assert styled == {0, 1, 2}  # a->b changed, b->d added, b->c removed; all edges here


def test_mermaid_escapes_characters_that_would_end_a_label() -> None:
    """Quotes, pipes, angle brackets and hashes in conditions become entities."""
    tricky = spec(
        edges=[
            {"source": "a", "target": "b"},
            {"source": "b", "target": "c",
             "condition": {"field": "kind", "op": "in", "value": ['"|<x>#']}},
        ]
    )  # fmt: skip
    parsed = parse_mermaid(render("mermaid", spec(), tricky))
    labels = [m.group(3) for m in parsed["edge"] if m.group(3)]
    assert labels == ["kind in [#quot;\\#quot;#124;#lt;x#gt;#35;#quot;]"]


class _Page(HTMLParser):
    """Collects tags, the attributes that could load something, and whether tags balance."""

    VOID = {"meta", "br", "hr", "img", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[str] = []
        self.open: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "data")]
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_one_self_contained_page() -> None:
    """Parses with balanced tags; inline CSS only, no script, no link, no external reference;
    user text (the prompt's markup) is escaped, not rendered."""
    page_html = render("html", spec(), changed(), old_label="v1", new_label="v2")
    page = _Page()
    page.feed(page_html)
    page.close()
    assert page.open == []
    assert {"html", "head", "style", "body", "table", "pre"} <= set(page.tags)
    assert not {"script", "link", "iframe", "img", "object"} & set(page.tags)
    assert page.refs == []
    assert "url(" not in page_html and "@import" not in page_html
    assert "b" not in page.tags  # the prompt's <b> stayed text
    text = "".join(page.text)
    assert 'Say <b>\\"hi\\"</b> | #1' in text  # the old value, as JSON
    assert "1 node added" in text


def test_an_unknown_format_is_refused() -> None:
    """Only the five formats exist."""
    assert DIFF_FORMATS == ("text", "unified", "json", "mermaid", "html")
    with pytest.raises(InvalidInputError, match="'svg'"):
        render("svg", spec(), spec())


@pytest.fixture
def stored(sqlite_database_url: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two versions of g-1 in a fresh registry that ``spark`` reads; their ids."""
    monkeypatch.setenv("SPARK_DATABASE_URL", sqlite_database_url)
    store = RegistryStore(sqlite_database_url)
    first = store.register_graph(spec(), ["tests.graphs.helpers"])
    second = store.create_version(first.version_id, changed(), author="rsi")
    return [first.version_id, second.version_id]


@pytest.mark.parametrize("fmt", DIFF_FORMATS)
def test_spark_diff_prints_each_format_for_stored_versions(
    stored: list[str], fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``spark diff g-1 V1 V2 --format F`` prints what ``render`` gives for the two versions."""
    assert main(["diff", "g-1", stored[0], stored[1], "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert out == render(fmt, spec(), changed(), old_label=stored[0], new_label=stored[1])


def test_spark_diff_takes_prefixes_ordinals_and_files(
    stored: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """#1 / #-1, a unique prefix and a spec file all name a version; --output writes a file."""
    draft = tmp_path / "draft.json"
    draft.write_text(changed().model_dump_json(), encoding="utf-8")
    out_file = tmp_path / "diff.html"
    assert (
        main(["diff", "g-1", "#1", str(draft), "--format", "html", "--output", str(out_file)]) == 0
    )
    assert out_file.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert capsys.readouterr().out == f"wrote the html diff of 'g-1' to {out_file}\n"
    assert main(["diff", "g-1", stored[0][:8], "#-1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["old_label"], data["new_label"]) == (stored[0], stored[1])
    assert data["counts"]["nodes removed"] == 1


def test_spark_diff_refuses_an_unknown_version(
    stored: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown reference exits 2 with the graph's versions listed."""
    assert main(["diff", "g-1", "v-nope", "#1"]) == 2
    err = capsys.readouterr().err
    assert "'v-nope' matches no version of graph 'g-1'" in err and stored[0] in err
