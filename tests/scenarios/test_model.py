"""The scenario file format: what loads, and errors that name the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from spark.errors import InvalidInputError
from spark.scenarios.model import load_scenario, parse_scenario
from tests.scenarios.helpers import scenario_data

ROOT = Path(__file__).resolve().parents[2]


def test_yaml_and_json_files_load_the_same_scenario(tmp_path: Path) -> None:
    """A scenario written as YAML or as JSON loads to the same model."""
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scenario_data()))
    (tmp_path / "s.json").write_text(json.dumps(scenario_data()))
    assert load_scenario(tmp_path / "s.yaml") == load_scenario(tmp_path / "s.json")


def test_objective_and_settings_go_into_the_graph_metadata() -> None:
    """The owner's objective lands in metadata["objective"] and settings in metadata["rsi"],
    where the loop reads them."""
    scenario = parse_scenario(
        scenario_data(
            objective={
                "weights": {"latency": 1.0},
                "constraints": [{"metric": "quality", "min": 0.8}],
            },
            settings={"min_traces": 50},
        )
    )
    metadata = scenario.spec().metadata
    assert metadata["objective"]["weights"]["latency"] == 1.0
    assert metadata["objective"]["constraints"] == [{"metric": "quality", "max": None, "min": 0.8}]
    assert metadata["rsi"] == {"min_traces": 50}


def test_a_bad_behaviour_field_is_named_with_its_path() -> None:
    """A negative latency names behaviour.<node>.latency.median_ms."""
    data = scenario_data()
    data["behaviour"]["fetch"]["latency"]["median_ms"] = -5
    with pytest.raises(InvalidInputError, match=r"behaviour\.fetch\.latency\.median_ms"):
        parse_scenario(data, source="mine.yaml")


def test_an_unknown_field_is_refused() -> None:
    """A misspelt field (here ``transient_rate``) is an error, not silently ignored."""
    data = scenario_data()
    data["behaviour"]["fetch"]["transient_rate"] = 0.1
    with pytest.raises(InvalidInputError, match=r"behaviour\.fetch\.transient_rate"):
        parse_scenario(data)


def test_behaviour_for_an_unknown_node_is_refused() -> None:
    """Behaviour keyed by a node id the graph lacks names the id and the real ones."""
    data = scenario_data()
    data["behaviour"]["fecth"] = {}
    with pytest.raises(InvalidInputError, match=r"unknown node id\(s\) \['fecth'\]"):
        parse_scenario(data)


def test_a_graph_input_without_a_distribution_is_refused() -> None:
    """Every declared graph input needs a distribution under inputs.fields."""
    data = scenario_data(inputs={"fields": {"other": {"pool": 3}}})
    with pytest.raises(InvalidInputError, match=r"graph input\(s\) \['query'\]"):
        parse_scenario(data)


def test_graph_errors_name_the_node() -> None:
    """An invalid graph reports the graph spec's own message (node and field) under graph."""
    data = scenario_data()
    data["graph"]["nodes"][1]["inputs"] = ["missing"]
    with pytest.raises(InvalidInputError, match=r"graph: .*'answer'.*\['missing'\]"):
        parse_scenario(data)


def test_an_oracle_op_is_validated_as_a_change_operation() -> None:
    """The oracle is a list of typed change operations; an unknown op is refused."""
    data = scenario_data(oracle=[{"op": "rewrite_everything", "node_id": "fetch"}])
    with pytest.raises(InvalidInputError, match=r"oracle\.0"):
        parse_scenario(data)


def test_a_field_draw_needs_a_pool_or_values() -> None:
    """An input field with neither pool nor values says what is missing."""
    data = scenario_data(inputs={"fields": {"query": {"draw": "zipf"}}})
    with pytest.raises(InvalidInputError, match="exactly one of pool or values"):
        parse_scenario(data)


def test_an_unreadable_or_malformed_file_names_the_file(tmp_path: Path) -> None:
    """A missing file and a file that is not YAML both name the path."""
    with pytest.raises(InvalidInputError, match=r"nope\.yaml"):
        load_scenario(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(InvalidInputError, match=r"bad\.yaml"):
        load_scenario(bad)


@pytest.mark.parametrize("path", sorted((ROOT / "bench" / "scenarios").glob("*.yaml")))
def test_every_benchmark_scenario_is_valid(path: Path) -> None:
    """The efficacy benchmark's scenario files all load, and their oracle applies."""
    from spark.rsi.changes import apply_changes

    scenario = load_scenario(path)
    if scenario.oracle:
        apply_changes(scenario.spec(), scenario.oracle)
