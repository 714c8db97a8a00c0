"""``spark diff GRAPH V1 V2 [--format text|unified|json|mermaid|html] [--output FILE]``.

V1 and V2 name versions of GRAPH in the registry: a version id, a unique prefix of one (``v-3f2a``),
``#N`` for the N-th registered version (1 = the first) or ``#-1`` for the latest; or a JSON/YAML
spec file (to diff a draft against what is stored). The diff goes to stdout, or to ``--output``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spark.cli_register import _spec_from_file
from spark.errors import InvalidInputError, UnknownVersionError
from spark.graphs.diff import DIFF_FORMATS, render
from spark.graphs.spec import GraphSpec
from spark.registry.versions import GraphVersion, RegistryStore
from spark.settings import SparkSettings

SPEC_SUFFIXES = (".json", ".yaml", ".yml")


def add_diff_command(commands: Any, json_flag: argparse.ArgumentParser) -> None:
    """Register ``spark diff`` on the ``spark`` subparsers."""
    text = "show what changed between two versions of a graph"
    diff = commands.add_parser("diff", help=text, description=__doc__, parents=[json_flag])
    diff.add_argument("graph", help="the graph id")
    diff.add_argument("old", metavar="V1", help="version id, unique prefix, #N, or a spec file")
    diff.add_argument("new", metavar="V2", help="version id, unique prefix, #N, or a spec file")
    diff.add_argument("--format", choices=DIFF_FORMATS, default="text", help="default: text")
    diff.add_argument("--output", default=None, metavar="FILE", help="write the diff to FILE")


def run_diff(args: argparse.Namespace) -> int:
    """``spark diff``: load both versions, render the diff, print or write it."""
    store = RegistryStore(SparkSettings.from_env().database_url)
    versions = _versions_or_none(store, args.graph, args.old, args.new)
    old, old_label = resolve(store, args.graph, args.old, versions)
    new, new_label = resolve(store, args.graph, args.new, versions)
    fmt = "json" if args.json and args.format == "text" else args.format
    text = render(fmt, old, new, old_label=old_label, new_label=new_label)
    if args.output is None:
        print(text, end="", flush=True)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote the {fmt} diff of {args.graph!r} to {args.output}", flush=True)
    return 0


def _versions_or_none(store: RegistryStore, graph_id: str, *refs: str) -> list[GraphVersion] | None:
    """The graph's versions, unless every reference is a spec file (no database needed)."""
    if all(_is_file(ref) for ref in refs):
        return None
    return store.list_versions(graph_id)


def _is_file(ref: str) -> bool:
    return ref.endswith(SPEC_SUFFIXES) or Path(ref).is_file()


def resolve(
    store: RegistryStore, graph_id: str, ref: str, versions: list[GraphVersion] | None
) -> tuple[GraphSpec, str]:
    """The spec ``ref`` names and a label for it; ``InvalidInputError`` for a file of another
    graph, ``UnknownVersionError`` for a reference matching no version (or several)."""
    if _is_file(ref):
        spec = _spec_from_file(Path(ref))
        if spec.id != graph_id:
            raise InvalidInputError(f"spec file {ref!r} is graph {spec.id!r}, not {graph_id!r}")
        return spec, ref
    version = _version(versions or [], graph_id, ref)
    return version.spec, version.version_id


def _version(versions: list[GraphVersion], graph_id: str, ref: str) -> GraphVersion:
    if ref.startswith("#"):
        return _by_ordinal(versions, graph_id, ref)
    exact = [v for v in versions if v.version_id == ref]
    matches = exact or [v for v in versions if v.version_id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(v.version_id for v in versions) or "none"
    why = "matches several versions" if matches else "matches no version"
    raise UnknownVersionError(f"{ref!r} {why} of graph {graph_id!r} (versions: {known})")


def _by_ordinal(versions: list[GraphVersion], graph_id: str, ref: str) -> GraphVersion:
    try:
        ordinal = int(ref[1:])
    except ValueError:
        raise InvalidInputError(f"{ref!r}: #N takes an integer (#1 first, #-1 latest)") from None
    index = ordinal - 1 if ordinal > 0 else ordinal
    if ordinal == 0 or not -len(versions) <= index < len(versions):
        raise UnknownVersionError(
            f"graph {graph_id!r} has {len(versions)} version(s); {ref!r} is not one of them"
        )
    return versions[index]
