"""What ``spark register`` registers: a graph spec found in a module or a file, and the modules
holding its node implementations.

``TARGET`` is either ``package.module:NAME`` (an attribute holding a ``GraphSpec``, or a
function returning one when called with no arguments) or the path of a JSON or YAML spec file.
Node modules come from ``--node-module``; without it, from the target module's ``NODE_MODULES``
list when it has one, else the target module itself.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from spark.errors import InvalidInputError
from spark.graphs.spec import GraphSpec, parse_graph_spec

SPEC_FILE_SUFFIXES = (".json", ".yaml", ".yml")


def load_target(target: str, node_modules: list[str]) -> tuple[GraphSpec, list[str]]:
    """The spec ``target`` names and the node modules to register it with.

    Raises ``InvalidInputError`` for a target that is neither an importable ``module:NAME``
    nor a readable spec file, or a file target without ``--node-module``;
    ``InvalidGraphSpecError`` for a spec that does not validate."""
    _import_from_cwd()
    if target.endswith(SPEC_FILE_SUFFIXES) or Path(target).is_file():
        if not node_modules:
            raise InvalidInputError(
                f"a spec file needs the modules holding its node implementations: "
                f"spark register {target} --node-module myapp.nodes"
            )
        return _spec_from_file(Path(target)), node_modules
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise InvalidInputError(
            f"register takes MODULE:NAME (a GraphSpec or a function returning one) or a "
            f".json/.yaml spec file, got {target!r}"
        )
    module = _import(module_name)
    spec = _spec_from_attribute(module, module_name, attribute)
    default_modules = getattr(module, "NODE_MODULES", None)
    if node_modules:
        return spec, node_modules
    if isinstance(default_modules, list) and all(isinstance(m, str) for m in default_modules):
        return spec, default_modules
    return spec, [module_name]


def _import_from_cwd() -> None:
    """Let the target and node modules be imported from the current directory, as
    ``python -m`` would (the ``spark`` script's own directory is ``.venv/bin``)."""
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))


def _import(module_name: str) -> Any:
    """Import ``module_name``."""
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(f"cannot import module {module_name!r}: {exc}") from exc


def _spec_from_attribute(module: Any, module_name: str, attribute: str) -> GraphSpec:
    """The ``GraphSpec`` held by ``module.attribute``, calling it first when it is callable."""
    value = getattr(module, attribute, None)
    if value is None:
        raise InvalidInputError(f"module {module_name!r} has no attribute {attribute!r}")
    if callable(value) and not isinstance(value, GraphSpec):
        try:
            value = value()
        except TypeError as exc:
            raise InvalidInputError(
                f"{module_name}:{attribute} must be callable without arguments: {exc}"
            ) from exc
    if isinstance(value, dict):
        return parse_graph_spec(value)
    if not isinstance(value, GraphSpec):
        raise InvalidInputError(
            f"{module_name}:{attribute} is a {type(value).__name__}, not a GraphSpec"
        )
    return value


def _spec_from_file(path: Path) -> GraphSpec:
    """A spec file, JSON or YAML (YAML is a superset of JSON, so either parses)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read spec file {str(path)!r}: {exc}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InvalidInputError(f"spec file {str(path)!r} does not parse: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInputError(f"spec file {str(path)!r} must hold a mapping (the graph spec)")
    return parse_graph_spec(data)
