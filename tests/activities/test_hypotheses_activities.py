"""Generating hypotheses against the experience store: undecided tests retried up to a limit,
rejected changes held back while the diagnosis stays the same, the owner's objective ranking
the result; learning stamps each attempt with what it answered."""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from activities.hypotheses import HypothesisActivities
from activities.learning import LearningActivities
from spark.experience.policy import MAX_UNDECIDED_ATTEMPTS
from spark.graphs.spec import GraphSpec
from spark.rsi.analysis import analyze
from spark.rsi.contracts import (
    CycleOutcome,
    HypothesizeInput,
    HypothesizeResult,
    RecordAttemptInput,
    RSISettings,
)
from spark.rsi.generator import RuleBasedGenerator
from spark.rsi.hypotheses import Hypothesis
from spark.rsi.objectives import Objective
from tests.rsi.builders import healthy_node_stats, node_stats, support_spec, version_stats
from tests.telemetry import factories

RETRY = "Retry transient failures of 'fetch_account'"
SWAP = "Switch 'draft' to the cheaper model 'small'"


class Loop:
    """The generation and learning activities on one database, cycle by cycle."""

    def __init__(self, database_url: str, spec: GraphSpec) -> None:
        self.deps = ActivityDeps.from_database_url(database_url)
        self.base = self.deps.registry.register_graph(spec, []).version_id
        self.cycle = 0

    def new_base(self, spec: GraphSpec) -> None:
        """Move on to a new version of the graph (as a deploy of another change would)."""
        self.base = self.deps.registry.create_version(self.base, spec, author="test").version_id

    async def generate(self, errors: int, **extra: Any) -> HypothesizeResult:
        """One cycle's generation for ``fetch_account`` timing out in ``errors`` of 200 runs."""
        self.cycle += 1
        spec = self.deps.registry.get_version(self.base).spec
        failing = node_stats("fetch_account", errors=errors, error_types={"TimeoutError": errors})
        stats = healthy_node_stats(
            fetch_account=failing, draft=node_stats("draft", mean_ms=30, total_cost=10.0)
        )
        report = analyze(spec, stats, version_stats(errors=errors))
        inp = HypothesizeInput(
            graph_id=spec.id, version_id=self.base, report=report.model_dump(), **extra
        )
        return await HypothesisActivities(self.deps).generate_hypotheses(inp)

    async def record(self, hypothesis: Hypothesis, outcome: CycleOutcome) -> None:
        """The workflow's record of this cycle's attempt."""
        arg = RecordAttemptInput(
            graph_id=hypothesis.graph_id,
            cycle=self.cycle,
            base_version_id=self.base,
            hypothesis=hypothesis,
            outcome=outcome,
        )
        await LearningActivities(self.deps).record_attempt(arg)

    def decision(self, title: str) -> tuple[str, str]:
        """The latest stored decision and reason about the hypothesis titled ``title`` on this
        base (another window's figures give the same change other values: another id)."""
        found = [
            d for d in self.deps.experience.proposals("support", self.base) if d.title == title
        ]
        assert found, f"no decision stored about {title!r}"
        return found[0].decision, found[0].reason  # newest first


def by_title(result: HypothesizeResult, title: str) -> Hypothesis | None:
    """The proposed hypothesis titled ``title``, if proposed."""
    return next((h for h in result.hypotheses if h.title == title), None)


def costly_spec(note: str = "Draft a reply.") -> GraphSpec:
    """The support graph whose ``draft`` model can be swapped for one ten times cheaper."""
    cheaper = {"big": 1.0, "small": 0.1}
    return support_spec(
        draft={"config": {"prompt": note, "model": "big", "params": {"cheaper_models": cheaper}}}
    )


async def test_an_inconclusive_test_is_retried_until_the_limit(sqlite_database_url: str) -> None:
    """An inconclusive (or unplannable) test is proposed again next cycle with prior_attempts=1,
    then 2; after MAX_UNDECIDED_ATTEMPTS undecided tests it is skipped, and the store says why."""
    loop = Loop(sqlite_database_url, costly_spec())
    first = await loop.generate(errors=30)
    retry = by_title(first, RETRY)
    assert retry is not None and first.prior_attempts[retry.hypothesis_id] == 0
    await loop.record(retry, "invalid_test")
    second = await loop.generate(errors=30)
    assert by_title(second, RETRY) == retry
    assert second.prior_attempts[retry.hypothesis_id] == 1
    (ranked,) = [r for r in second.ranking if r.hypothesis_id == retry.hypothesis_id]
    assert ranked.why.endswith(f"; attempt 2 of {MAX_UNDECIDED_ATTEMPTS} on this version")
    assert loop.decision(RETRY)[0] == "retry"
    await loop.record(retry, "inconclusive")
    assert (await loop.generate(errors=30)).prior_attempts[retry.hypothesis_id] == 2
    await loop.record(retry, "inconclusive")
    last = await loop.generate(errors=30)
    assert by_title(last, RETRY) is None
    assert by_title(last, SWAP) is not None
    decision, reason = loop.decision(RETRY)
    assert decision == "skip" and f"limit {MAX_UNDECIDED_ATTEMPTS}" in reason


async def test_a_decided_test_is_not_retried_on_the_same_version(
    sqlite_database_url: str,
) -> None:
    """A change whose test decided (here: rejected) is not proposed again on that version."""
    loop = Loop(sqlite_database_url, costly_spec())
    retry = by_title(await loop.generate(errors=30), RETRY)
    assert retry is not None
    await loop.record(retry, "rejected_test")
    assert by_title(await loop.generate(errors=30), RETRY) is None
    assert loop.decision(RETRY) == (
        "skip",
        "already tried on this version: rejected_test in cycle 1",
    )


async def test_a_rejected_change_waits_for_a_changed_diagnosis(sqlite_database_url: str) -> None:
    """Rejected on evidence on one version while the failures were medium (3%), the same retry
    is not proposed on the next version at 10% (high: one band up, within what noise near a
    band's edge gives), and is proposed again once the failures grew two bands worse (25%:
    critical)."""
    loop = Loop(sqlite_database_url, costly_spec())
    retry = by_title(await loop.generate(errors=6), RETRY)
    assert retry is not None
    await loop.record(retry, "rejected_test")
    rejected_on = loop.base
    loop.new_base(costly_spec("Draft a short reply."))
    assert by_title(await loop.generate(errors=20), RETRY) is None
    decision, reason = loop.decision(RETRY)
    assert decision == "skip" and reason.startswith(f"rejected_test on {rejected_on} in cycle 1")
    assert "now high, within noise" in reason
    again = by_title(await loop.generate(errors=50), RETRY)
    assert again is not None and again.hypothesis_id != retry.hypothesis_id
    decision, reason = loop.decision(RETRY)
    assert (
        decision == "propose"
        and "the diagnosis is now transient_errors|fetch_account|critical" in reason
    )


async def test_the_owners_objective_orders_the_hypotheses(sqlite_database_url: str) -> None:
    """By default the switch to the ten times cheaper model comes first (the retry cures most
    of 30% failures, but the cured runs then pay for drafting); the settings' objective weighing
    a failure four times as much puts the retry first. ``ranking`` explains it."""
    loop = Loop(sqlite_database_url, costly_spec())
    default = await loop.generate(errors=60)
    assert [h.title for h in default.hypotheses] == [SWAP, RETRY]
    assert [r.hypothesis_id for r in default.ranking] == [
        h.hypothesis_id for h in default.hypotheses
    ]
    assert default.ranking[0].why.startswith("on the frontier; objective -0.")
    failure_heavy = await loop.generate(errors=60, objective=Objective(weights={"error_rate": 4.0}))
    assert [h.title for h in failure_heavy.hypotheses] == [RETRY, SWAP]


async def test_the_graphs_declared_objective_ranks_too(sqlite_database_url: str) -> None:
    """Without a settings override, the objective declared in the spec's metadata ranks."""
    declared = {"objective": {"weights": {"error_rate": 4.0}}}
    spec = costly_spec().model_copy(update={"metadata": declared})
    loop = Loop(sqlite_database_url, spec)
    assert [h.title for h in (await loop.generate(errors=60)).hypotheses] == [RETRY, SWAP]


async def test_a_malformed_declared_objective_is_misuse(sqlite_database_url: str) -> None:
    """A spec declaring a negative weight fails the activity at once (non-retryable)."""
    spec = costly_spec().model_copy(update={"metadata": {"objective": {"weights": {"cost": -1}}}})
    loop = Loop(sqlite_database_url, spec)
    with pytest.raises(ApplicationError) as raised:
        await loop.generate(errors=60)
    assert raised.value.non_retryable and raised.value.type == "InvalidInputError"


async def test_learning_stamps_the_attempt_with_what_it_answered(sqlite_database_url: str) -> None:
    """The recorded attempt carries the base-independent change signature and the diagnosis
    fingerprint generation saw (severity included)."""
    loop = Loop(sqlite_database_url, costly_spec())
    retry = by_title(await loop.generate(errors=30), RETRY)
    assert retry is not None
    await loop.record(retry, "inconclusive")
    (attempt,) = loop.deps.experience.attempts_on("support", loop.base)
    assert attempt.diagnosis_fingerprint == "transient_errors|fetch_account|high"
    assert attempt.change_signature is not None and attempt.change_signature.startswith("c-")


async def test_generation_reports_what_it_made_and_why_proposals_fell_away(
    sqlite_database_url: str,
) -> None:
    """The result counts the generator's proposals, those the settings' change kinds exclude
    and those already decided, so the cycle's reason can say which it was."""
    loop = Loop(sqlite_database_url, costly_spec())
    first = await loop.generate(errors=30)
    assert first.generated is not None and first.generated >= 2
    assert (first.excluded_by_kind, first.already_decided) == (0, 0)
    excluded = await loop.generate(errors=30, change_kinds=["add_edge"])
    assert excluded.hypotheses == []
    assert excluded.excluded_by_kind == excluded.generated == first.generated
    for hypothesis in first.hypotheses:
        await loop.record(hypothesis, "rejected_test")
    tried = await loop.generate(errors=30)
    assert tried.hypotheses == []
    assert tried.already_decided == tried.generated == first.generated


class RulesWithoutObjective:
    """A generator written before ``generate`` took the owner's objective."""

    def __init__(self) -> None:
        self.calls = 0

    def generate(
        self,
        report: Any,
        spec: GraphSpec,
        *,
        patterns: Any = (),
        base_version_id: str,
        max_hypotheses: int = 5,
    ) -> list[Hypothesis]:
        self.calls += 1
        return RuleBasedGenerator().generate(
            report,
            spec,
            patterns=patterns,
            base_version_id=base_version_id,
            max_hypotheses=max_hypotheses,
        )


async def test_a_generator_without_the_objective_parameter_still_runs(
    sqlite_database_url: str,
) -> None:
    """The activity passes the owner's objective only to generators that take it."""
    loop = Loop(sqlite_database_url, costly_spec())
    older = RulesWithoutObjective()
    loop.deps = dataclasses.replace(loop.deps, generator=older)  # type: ignore[arg-type]  # the older protocol
    result = await loop.generate(errors=30)
    assert older.calls == 1
    assert by_title(result, RETRY) is not None


def write_failing_traffic(loop: Loop, runs: int = 300, error_rate: float = 0.3) -> None:
    """An hour of the base version's runs, ``error_rate`` of them failing at random."""
    rng = random.Random(1)
    now = time.time()
    loop.deps.telemetry.write_runs(
        [
            factories.run(
                0,
                graph_id="support",
                version_id=loop.base,
                started_at=now - 3_600 + i * 3_600 / runs,
                status="error" if rng.random() < error_rate else "ok",
                duration_ms=rng.lognormvariate(5, 0.5),
                cost=rng.lognormvariate(0, 0.3),
            )
            for i in range(runs)
        ]
    )


async def test_a_change_its_window_can_decide_comes_before_one_it_cannot(
    sqlite_database_url: str,
) -> None:
    """With 30% of 300 runs an hour failing and windows of at most ten hours, the cheaper model
    (the larger expected gain) must show the error rate unchanged within 2 points, which such a
    window mostly cannot; the retry expects to cure those failures, so its window decides. Given
    the loop's settings the retry ranks first and both say why; without them (older workflows),
    or with replay alone deciding, the order is the expected gain's."""
    loop = Loop(sqlite_database_url, costly_spec())
    write_failing_traffic(loop)
    short_windows = RSISettings(ab_max_window_s=36_000.0)
    ranked = await loop.generate(errors=60, settings=short_windows)
    assert [h.title for h in ranked.hypotheses] == [RETRY, SWAP]
    retry, swap = ranked.ranking
    assert retry.decidability is not None and swap.decidability is not None
    assert swap.decidability < 0.3 < retry.decidability
    assert "of the design's power" in swap.why
    unranked = await loop.generate(errors=60)
    assert [h.title for h in unranked.hypotheses] == [SWAP, RETRY]
    assert all(r.decidability is None for r in unranked.ranking)
    replay_only = short_windows.model_copy(update={"ab_mode": "replay"})
    replayed = await loop.generate(errors=60, settings=replay_only)
    assert [h.title for h in replayed.hypotheses] == [SWAP, RETRY]


async def test_a_base_without_traffic_ranks_by_expected_gain(sqlite_database_url: str) -> None:
    """No runs to plan a window from: no decidability, the expected gain's order."""
    loop = Loop(sqlite_database_url, costly_spec())
    ranked = await loop.generate(errors=60, settings=RSISettings(ab_max_window_s=36_000.0))
    assert [h.title for h in ranked.hypotheses] == [SWAP, RETRY]
    assert all(r.decidability is None for r in ranked.ranking)
