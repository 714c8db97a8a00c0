"""Render the HTML diff of two stored versions of a graph, open it in headless Chromium, and check
what the browser built: every changed node, field and edge is on the page, in a row of its kind,
nothing external is loaded, and the console stayed silent.

    python scripts/check_diff_html.py                  # Chromium at /usr/bin/chromium
    python scripts/check_diff_html.py --no-browser     # the same checks on the raw HTML
    python scripts/check_diff_html.py --keep out.html  # keep the rendered page

The two versions are registered in a scratch SQLite registry (a root version and a child of it
with a node changed, one removed, one added and an edge condition changed) and diffed as
``spark diff`` does. Exit status 0 when every check passes, 1 with each problem on stderr.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path

from spark.db import sqlite_url
from spark.graphs.diff import GraphDiff, diff_graphs, render
from spark.graphs.spec import GraphSpec, parse_graph_spec
from spark.registry import RegistryStore

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this
# machine's closed network refuses (see the machine notes).
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
)
BROWSER_TIMEOUT_S = 120
EXTERNAL_TAGS = frozenset({"script", "link", "img", "iframe", "object", "embed"})


def base_spec() -> GraphSpec:
    """a -> b -> c, b -> c only when ``kind`` is "x"."""
    return parse_graph_spec(
        {
            "id": "html-diff-check",
            "entry": "a",
            "inputs": ["q"],
            "nodes": [
                {"id": "a", "type": "fn", "inputs": ["q"], "outputs": ["kind"]},
                {"id": "b", "type": "llm", "inputs": ["kind"], "outputs": ["r"],
                 "config": {"prompt": "Say <b>hi</b>", "params": {"k": 1}}},
                {"id": "c", "type": "fn", "inputs": ["r"], "outputs": ["out"]},
            ],
            "edges": [
                {"source": "a", "target": "b"},
                {"source": "b", "target": "c",
                 "condition": {"field": "kind", "op": "eq", "value": "x"}},
            ],
        }
    )  # fmt: skip


def changed_spec() -> GraphSpec:
    """b's prompt, model and a param changed, c removed, d added, a -> b now conditional."""
    data = base_spec().model_dump(mode="json")
    data["nodes"] = [
        data["nodes"][0],
        {**data["nodes"][1], "config": {"prompt": "Say hi", "model": "m", "params": {"k": 2}}},
        {"id": "d", "type": "fn", "inputs": ["r"], "outputs": ["out"]},
    ]
    data["edges"] = [
        {"source": "a", "target": "b", "condition": {"field": "kind", "op": "truthy"}},
        {"source": "b", "target": "d"},
    ]
    return parse_graph_spec(data)


def stored_versions(folder: Path) -> tuple[GraphSpec, GraphSpec, str, str]:
    """Both specs as the registry stores them (root and child), with their version ids."""
    registry = RegistryStore(sqlite_url(folder / "registry.db"))
    root = registry.register_graph(base_spec(), node_modules=[])
    child = registry.create_version(root.version_id, changed_spec(), author="check")
    old, new = registry.get_version(root.version_id), registry.get_version(child.version_id)
    return old.spec, new.spec, old.version_id, new.version_id


class PageContent(HTMLParser):
    """The text of each ``<tr>`` (with its class), the ``<h3>`` headings, every tag seen."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, str]] = []
        self.headings: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []
        self._row: tuple[str, list[str]] | None = None
        self._in_h3 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "tr":
            self._row = (dict(attrs).get("class") or "", [])
        self._in_h3 = self._in_h3 or tag == "h3"

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._row is not None:
            self.rows.append((self._row[0], " ".join(self._row[1])))
            self._row = None
        if tag == "h3":
            self._in_h3 = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._row is not None:
            self._row[1].append(data.strip())
        if self._in_h3 and data.strip():
            self.headings.append(data.strip())


def dom_problems(page_html: str, diff: GraphDiff) -> list[str]:
    """What the page misses of ``diff`` or loads from elsewhere; empty when it is complete."""
    page = PageContent()
    page.feed(page_html)
    problems = [f"the page has a <{tag}> element" for tag in sorted(page.tags & EXTERNAL_TAGS)]
    rows = page.rows
    for node in diff.nodes_added:
        problems += _missing_row(rows, "added", f"{node.id} ({node.type})")
    for node in diff.nodes_removed:
        problems += _missing_row(rows, "removed", f"{node.id} ({node.type})")
    for change in diff.nodes_changed:
        if change.node_id not in page.headings:
            problems.append(f"no heading for changed node {change.node_id!r}")
        problems += [
            f"changed field {field.path!r} of {change.node_id!r} is not in a row"
            for field in change.changes
            if not any(text.startswith(field.path) for _, text in rows)
        ]
    edges = [("added", e.source, e.target) for e in diff.edges_added]
    edges += [("removed", e.source, e.target) for e in diff.edges_removed]
    edges += [("changed", e.source, e.target) for e in diff.edges_changed]
    problems += [
        f"edge {source!r}->{target!r} is not in a {kind!r} row"
        for kind, source, target in edges
        if not any(c == kind and f"{source!r}->{target!r}" in t for c, t in rows)
    ]
    if diff.summary() not in " ".join(page.text):
        problems.append(f"the summary {diff.summary()!r} is not on the page")
    return problems


def _missing_row(rows: list[tuple[str, str]], kind: str, text: str) -> list[str]:
    if any(cls == kind and text in row for cls, row in rows):
        return []
    return [f"no {kind!r} row holding {text!r}"]


def console_messages(browser_log: str) -> list[str]:
    """The page's console output in Chromium's log (a page without scripts writes none)."""
    return [line for line in browser_log.splitlines() if ":CONSOLE" in line]


def open_in_chromium(page: Path, chromium: Path, profile: Path) -> tuple[str, str]:
    """The DOM Chromium built from ``page`` (``--dump-dom``) and its log."""
    done = subprocess.run(
        [str(chromium), *HEADLESS_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0 or "<html" not in done.stdout:
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout, done.stderr


def check(chromium: Path | None, keep: Path | None) -> list[str]:
    """Render, open (unless ``chromium`` is None) and check; the problems found."""
    with tempfile.TemporaryDirectory(prefix="spark-diff-html-") as scratch:
        folder = Path(scratch)
        old, new, old_id, new_id = stored_versions(folder)
        page_html = render("html", old, new, old_label=old_id, new_label=new_id)
        diff = diff_graphs(old, new, old_label=old_id, new_label=new_id)
        page = folder / "diff.html"
        page.write_text(page_html, encoding="utf-8")
        if keep is not None:
            shutil.copyfile(page, keep)
        if chromium is None:
            return dom_problems(page_html, diff)
        dom, log = open_in_chromium(page, chromium, folder / "profile")
        problems = dom_problems(dom, diff)
        return problems + [f"console: {line}" for line in console_messages(log)]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks; 0 when the page is complete, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", type=Path, default=CHROMIUM)
    parser.add_argument("--no-browser", action="store_true", help="check the raw HTML only")
    parser.add_argument("--keep", type=Path, help="copy the rendered page here")
    args = parser.parse_args(argv)
    chromium = None if args.no_browser else args.chromium
    if chromium is not None and not chromium.exists():
        print(f"error: no Chromium at {chromium} (apt-get install chromium)", file=sys.stderr)
        return 2
    problems = check(chromium, args.keep)
    where = "raw HTML" if chromium is None else f"the DOM {chromium.name} built"
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    print(f"checked {where}: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
