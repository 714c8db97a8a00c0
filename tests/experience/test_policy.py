"""Whether a proposal is tried: undecided tests retried up to a limit, rejected changes held back
while the diagnosis stays the same."""

from __future__ import annotations

from spark.experience import Attempt, Outcome
from spark.experience.policy import (
    MAX_UNDECIDED_ATTEMPTS,
    change_shape,
    change_signature,
    diagnosis_fingerprint,
    judge_proposal,
)
from spark.experience.store import FINGERPRINT_KEY, SHAPE_KEY, SIGNATURE_KEY
from spark.rsi.analysis import DiagnosticReport, analyze
from spark.rsi.contracts import WINDOW_CAPACITY_KEY
from spark.rsi.hypotheses import Hypothesis, SetConfig
from tests.rsi.builders import healthy_node_stats, node_stats, support_spec, version_stats

FINGERPRINT = "transient_errors|fetch_account|high"


def retry_on(base_version_id: str, backoff_s: float = 0.02, retries: int = 2) -> Hypothesis:
    """Retries for ``fetch_account`` on ``base_version_id``."""
    return Hypothesis(
        graph_id="support",
        base_version_id=base_version_id,
        title="Retry transient failures of 'fetch_account'",
        diagnosis="transient_errors: node 'fetch_account' fails 15.0% of executions",
        changes=[
            SetConfig(node_id="fetch_account", values={"retries": retries, "backoff_s": backoff_s})
        ],
        primary_metric="error_rate",
    )


def tried(
    hypothesis: Hypothesis,
    outcome: Outcome,
    cycle: int,
    fingerprint: str = FINGERPRINT,
    window_capacity: float | None = None,
) -> Attempt:
    """The attempt record of ``hypothesis`` ending in ``outcome``, as the learning step stores it
    (``window_capacity``: the share of its planned runs a capped online window held)."""
    details: dict[str, object] = {
        SIGNATURE_KEY: change_signature(hypothesis.changes),
        SHAPE_KEY: change_shape(hypothesis.changes),
        FINGERPRINT_KEY: fingerprint,
    }
    if window_capacity is not None:
        details[WINDOW_CAPACITY_KEY] = window_capacity
    return Attempt.from_hypothesis(
        hypothesis,
        cycle=cycle,
        diagnosis_kind="transient_errors",
        outcome=outcome,
        details=details,
    )


def failing_report(errors: int) -> DiagnosticReport:
    """The support graph with ``fetch_account`` timing out in ``errors`` of 200 runs."""
    failing = node_stats("fetch_account", errors=errors, error_types={"TimeoutError": errors})
    stats = healthy_node_stats(fetch_account=failing)
    return analyze(support_spec(), stats, version_stats(errors=errors))


def test_a_first_proposal_is_tried() -> None:
    """Nothing recorded: proposed, no prior attempt."""
    verdict = judge_proposal(retry_on("v1"), FINGERPRINT, [])
    assert (verdict.decision, verdict.prior_attempts) == ("propose", 0)


def test_an_inconclusive_attempt_is_retried_with_its_count() -> None:
    """One inconclusive test on this version: retried, with prior_attempts=1 so the workflow can
    give it a longer window."""
    hypothesis = retry_on("v1")
    verdict = judge_proposal(hypothesis, FINGERPRINT, [tried(hypothesis, "inconclusive", 1)])
    assert (verdict.decision, verdict.prior_attempts) == ("retry", 1)
    assert "inconclusive" in verdict.reason


def test_an_invalid_test_is_not_final_either() -> None:
    """A window that could not be planned (invalid_test) counts as undecided, not as tried."""
    hypothesis = retry_on("v1")
    history = [tried(hypothesis, "invalid_test", 1), tried(hypothesis, "inconclusive", 2)]
    verdict = judge_proposal(hypothesis, FINGERPRINT, history)
    assert (verdict.decision, verdict.prior_attempts) == ("retry", 2)


def test_an_undecided_test_whose_window_was_capped_waits_for_a_new_base() -> None:
    """Inconclusive with its online window capped at 11% of the runs it needed: a retry would
    be capped the same, so the change is skipped on this version, and the reason says why. On
    a new base version it is proposed again."""
    hypothesis = retry_on("v1")
    capped = tried(hypothesis, "inconclusive", 1, window_capacity=0.11)
    verdict = judge_proposal(hypothesis, FINGERPRINT, [capped])
    assert verdict.decision == "skip"
    assert "capped at 11% of the runs its plan needed" in verdict.reason
    assert judge_proposal(retry_on("v2"), FINGERPRINT, [capped]).decision == "propose"


def test_an_undecided_test_whose_window_held_its_plan_is_retried() -> None:
    """A window that held every planned run (capacity 1, or nothing recorded) is retried."""
    hypothesis = retry_on("v1")
    full = tried(hypothesis, "inconclusive", 1, window_capacity=1.0)
    assert judge_proposal(hypothesis, FINGERPRINT, [full]).decision == "retry"


def test_undecided_attempts_stop_at_the_limit() -> None:
    """After MAX_UNDECIDED_ATTEMPTS undecided tests on one version, the change waits for a new
    base version, and the reason says so."""
    hypothesis = retry_on("v1")
    history = [tried(hypothesis, "inconclusive", c) for c in range(1, MAX_UNDECIDED_ATTEMPTS + 1)]
    verdict = judge_proposal(hypothesis, FINGERPRINT, history)
    assert verdict.decision == "skip"
    assert f"limit {MAX_UNDECIDED_ATTEMPTS}" in verdict.reason


def test_a_decided_change_is_not_tried_again_on_the_same_version() -> None:
    """Shipped, rejected or refused on this version: skipped, whatever came before."""
    hypothesis = retry_on("v1")
    history = [tried(hypothesis, "inconclusive", 1), tried(hypothesis, "rejected_review", 2)]
    verdict = judge_proposal(hypothesis, FINGERPRINT, history)
    assert verdict.decision == "skip"
    assert verdict.reason == "already tried on this version: rejected_review in cycle 2"


def test_a_rejected_change_is_not_reproposed_on_a_new_base_for_the_same_diagnosis() -> None:
    """Rejected on evidence on v1; on v2 the same changes (a different hypothesis id) answering
    the same diagnosis are skipped, with the earlier rejection as the reason."""
    old, new = retry_on("v1"), retry_on("v2")
    assert old.hypothesis_id != new.hypothesis_id
    verdict = judge_proposal(new, FINGERPRINT, [tried(old, "rejected_test", 3)])
    assert verdict.decision == "skip"
    assert verdict.reason == (
        f"rejected_test on v1 in cycle 3 for the same diagnosis ({FINGERPRINT})"
    )


def test_a_rejected_change_is_not_reproposed_with_other_values_for_the_same_diagnosis() -> None:
    """The rule derives its numbers from the window's measurements, so the next cycle proposes
    the same retries with a backoff of 0.026 s instead of 0.02 s: a new hypothesis id, on the
    same version, that the rejected test already measured. Skipped, on this version or a new
    one, while the diagnosis stays the same."""
    rejected = tried(retry_on("v1", backoff_s=0.02), "rejected_test", 1)
    for base in ("v1", "v2"):
        again = retry_on(base, backoff_s=0.026, retries=3)
        verdict = judge_proposal(again, FINGERPRINT, [rejected])
        assert verdict.decision == "skip", base
        assert "the same change with other values was rejected_test on v1" in verdict.reason


def test_other_values_are_tried_after_an_undecided_test_or_for_another_diagnosis() -> None:
    """Only a rejection on evidence holds other values back: an inconclusive test says nothing
    against them, and a changed diagnosis is a new question."""
    undecided = tried(retry_on("v1", backoff_s=0.02), "inconclusive", 1)
    verdict = judge_proposal(retry_on("v1", backoff_s=0.026), FINGERPRINT, [undecided])
    assert verdict.decision == "propose"
    low = "transient_errors|fetch_account|low"
    rejected = tried(retry_on("v1", backoff_s=0.02), "rejected_test", 1, fingerprint=low)
    verdict = judge_proposal(retry_on("v1", backoff_s=0.026), FINGERPRINT, [rejected])
    assert verdict.decision == "propose"


def test_the_change_shape_keeps_everything_but_numbers() -> None:
    """Numbers are left out; nodes, fields and values that are not numbers are kept."""
    assert change_shape(retry_on("v1", 0.02).changes) == change_shape(retry_on("v1", 0.5).changes)
    other_node = [SetConfig(node_id="draft_reply", values={"retries": 2, "backoff_s": 0.02})]
    other_field = [SetConfig(node_id="fetch_account", values={"retries": 2, "timeout_s": 0.02})]
    model = [SetConfig(node_id="fetch_account", values={"model": "small"})]
    other_model = [SetConfig(node_id="fetch_account", values={"model": "large"})]
    shapes = {
        change_shape(changes)
        for changes in (retry_on("v1").changes, other_node, other_field, model, other_model)
    }
    assert len(shapes) == 5


def test_a_rolled_back_change_is_held_back_too() -> None:
    """A deployment rolled back is a rejection on evidence."""
    verdict = judge_proposal(retry_on("v2"), FINGERPRINT, [tried(retry_on("v1"), "rolled_back", 3)])
    assert verdict.decision == "skip"


def test_a_rejected_change_is_reproposed_when_the_diagnosis_grew_worse_beyond_noise() -> None:
    """Rejected on v1 when the failures were of low severity; on v2 they are high, two bands
    up: the change is proposed again, and the reason names both diagnoses."""
    low = "transient_errors|fetch_account|low"
    history = [tried(retry_on("v1"), "rejected_test", 3, fingerprint=low)]
    verdict = judge_proposal(retry_on("v2"), FINGERPRINT, history)
    assert (verdict.decision, verdict.prior_attempts) == ("propose", 0)
    assert f"for diagnosis {low}; the diagnosis is now {FINGERPRINT}" in verdict.reason


def test_a_severity_one_band_away_is_the_same_diagnosis() -> None:
    """A bottleneck measured near a band's edge lands on either side of it from one window to
    the next (heavy_tail: a latency share of 0.79, then 0.80). Rejected at high, the change
    stays held back at critical (one band up) and at any lower severity, on any base and with
    other values; another node or another kind is another question."""
    rejected = tried(retry_on("v1"), "rejected_test", 3)
    for severity in ("critical", "medium", "low", "none"):
        fingerprint = f"transient_errors|fetch_account|{severity}"
        for hypothesis in (retry_on("v2"), retry_on("v2", backoff_s=0.05)):
            verdict = judge_proposal(hypothesis, fingerprint, [rejected])
            assert verdict.decision == "skip", (severity, hypothesis.title)
            assert f"{FINGERPRINT}; now {severity}, within noise" in verdict.reason
    for other in ("transient_errors|draft_reply|high", "persistent_errors|fetch_account|high"):
        assert judge_proposal(retry_on("v2"), other, [rejected]).decision == "propose"
    unknown = "transient_errors|fetch_account|unknown"
    assert judge_proposal(retry_on("v2"), unknown, [rejected]).decision == "propose"


def test_an_inconclusive_change_on_an_old_base_starts_afresh() -> None:
    """Undecided attempts count per base version: on a new version the change is new."""
    history = [tried(retry_on("v1"), "inconclusive", c) for c in range(1, 4)]
    verdict = judge_proposal(retry_on("v2"), FINGERPRINT, history)
    assert (verdict.decision, verdict.prior_attempts) == ("propose", 0)


def test_the_change_signature_ignores_the_base_version() -> None:
    """The same changes on two versions share a signature; other values do not."""
    assert change_signature(retry_on("v1").changes) == change_signature(retry_on("v2").changes)
    other = [SetConfig(node_id="fetch_account", values={"retries": 3, "backoff_s": 0.02})]
    assert change_signature(other) != change_signature(retry_on("v1").changes)


def test_the_diagnosis_fingerprint_ignores_live_figures_but_not_severity() -> None:
    """15% and 10% failures are both 'high': the same fingerprint, although the diagnosis text
    quotes different percentages; 3% is 'medium': a different one."""
    hypothesis = retry_on("v1")
    assert diagnosis_fingerprint(hypothesis, failing_report(30)) == FINGERPRINT
    assert diagnosis_fingerprint(hypothesis, failing_report(20)) == FINGERPRINT
    assert diagnosis_fingerprint(hypothesis, failing_report(6)) == (
        "transient_errors|fetch_account|medium"
    )
    assert diagnosis_fingerprint(hypothesis, None).endswith("|unknown")
