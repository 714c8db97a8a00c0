"""The ship rule on constructed windows, and its handling of bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spark.errors import InvalidInputError
from spark.rsi.stats import (
    Decision,
    MetricSpec,
    SequentialDesign,
    SummaryStats,
    decide,
    decide_from_summaries,
)

LATENCY = MetricSpec(name="latency", kind="latency", improves="decrease", role="primary")
ERRORS = MetricSpec(
    name="error_rate", kind="rate", improves="decrease", margin=0.02, margin_scale="absolute"
)
QUALITY = MetricSpec(name="quality", kind="continuous", improves="increase", margin=0.05)
METRICS = [LATENCY, ERRORS, QUALITY]
ONE_LOOK = SequentialDesign()
TEN_LOOKS = SequentialDesign(planned_looks=10)


def _errors(n: int, events: int) -> np.ndarray:
    return np.r_[np.ones(events), np.zeros(n - events)]


def _arms(
    latency_factor: float, error_factor: float, n: int = 2000, seed: int = 0
) -> tuple[dict, dict]:
    """Lognormal latency, 5% baseline errors and beta quality; the candidate's latency and
    error rate scaled by the factors."""
    rng = np.random.default_rng(seed)
    latency = rng.lognormal(6.0, 0.5, 2 * n)
    quality = rng.beta(7, 3, 2 * n)
    baseline = {"latency": latency[:n], "error_rate": _errors(n, n // 20), "quality": quality[:n]}
    candidate = {
        "latency": latency[n:] * latency_factor,
        "error_rate": _errors(n, round(n * 0.05 * error_factor)),
        "quality": quality[n:],
    }
    return baseline, candidate


def test_clear_win_ships() -> None:
    """20% faster with unchanged errors and quality ships, each guardrail non-inferior."""
    baseline, candidate = _arms(0.8, 1.0)
    decision = decide(METRICS, baseline, candidate, design=ONE_LOOK, assignment=(2000, 2000))
    assert decision.outcome == "ship"
    latency = decision.metrics[0]
    assert latency.significant_improvement and latency.ci_high < 0
    assert latency.estimate == pytest.approx(-0.2, abs=0.03)
    assert all(result.non_inferior for result in decision.metrics)


def test_win_with_a_guardrail_breach_is_rejected() -> None:
    """20% faster but the error rate goes from 5% to 10%: rejected, naming the guardrail."""
    baseline, candidate = _arms(0.8, 2.0)
    decision = decide(METRICS, baseline, candidate, design=ONE_LOOK)
    assert decision.outcome == "reject"
    assert any("'error_rate'" in reason for reason in decision.reasons)
    assert decision.metrics[1].significant_harm


def test_sample_ratio_mismatch_voids_the_window() -> None:
    """Assignment counts of 5,000 vs 5,400 at an intended 50/50 split are invalid."""
    baseline, candidate = _arms(0.8, 1.0)
    decision = decide(METRICS, baseline, candidate, design=ONE_LOOK, assignment=(5000, 5400))
    assert decision.outcome == "invalid"
    assert decision.srm_p_value is not None and decision.srm_p_value < 0.001
    assert "sample ratio mismatch" in decision.reasons[0]


def test_futility_stop_at_an_interim_look() -> None:
    """Halfway through, a candidate that is no faster crosses the futility bound: reject."""
    baseline, candidate = _arms(1.0, 1.0)
    decision = decide(METRICS, baseline, candidate, design=TEN_LOOKS, look=5)
    assert decision.outcome == "reject"
    assert decision.metrics[0].futile
    assert "futility" in decision.reasons[0]


def test_without_futility_the_window_continues_then_ends_inconclusive() -> None:
    """With futility off, a null candidate continues at interim looks and is inconclusive at
    the final one."""
    baseline, candidate = _arms(1.0, 1.0)
    design = SequentialDesign(planned_looks=10, futility=False)
    assert decide(METRICS, baseline, candidate, design=design, look=5).outcome == "continue"
    assert decide(METRICS, baseline, candidate, design=design, look=10).outcome == "inconclusive"


def test_early_looks_demand_stronger_evidence() -> None:
    """A 6% gain on 2,000 runs is enough at the last of ten looks but not at the first."""
    baseline, candidate = _arms(0.94, 1.0)
    first = decide([LATENCY], baseline, candidate, design=TEN_LOOKS, look=1)
    last = decide([LATENCY], baseline, candidate, design=TEN_LOOKS, look=10)
    assert first.outcome == "continue" and last.outcome == "ship"
    assert first.metrics[0].ci_low < last.metrics[0].ci_low
    assert first.metrics[0].nominal_alpha < 1e-10


def test_a_significantly_worse_primary_is_a_clear_loss() -> None:
    """15% slower on the primary is rejected at once, even at an interim look."""
    baseline, candidate = _arms(1.15, 1.0)
    decision = decide([LATENCY], baseline, candidate, design=TEN_LOOKS, look=6)
    assert decision.outcome == "reject"
    assert "worse than the baseline" in decision.reasons[0]


def test_unproven_guardrail_at_the_final_look_is_inconclusive() -> None:
    """A win whose quality guardrail has too few samples to show non-inferiority."""
    baseline, candidate = _arms(0.8, 1.0)
    baseline["quality"], candidate["quality"] = baseline["quality"][:20], candidate["quality"][:20]
    decision = decide(METRICS, baseline, candidate, design=ONE_LOOK)
    assert decision.outcome == "inconclusive"
    assert decision.metrics[2].non_inferior is False
    assert any("'quality' is not shown non-inferior" in reason for reason in decision.reasons)


def _score(mean: float, n: int = 5000) -> SummaryStats:
    return SummaryStats(count=n, sum=mean * n, sum_squares=n * mean * mean + (n - 1))


def _two_primaries(gain_a: float, gain_b: float) -> Decision:
    specs = [
        MetricSpec(name=name, kind="continuous", improves="increase", role="primary", margin=0.5)
        for name in ("a", "b")
    ]
    baseline = {"a": _score(10.0), "b": _score(10.0)}
    candidate = {"a": _score(10.0 + gain_a), "b": _score(10.0 + gain_b)}
    return decide_from_summaries(specs, baseline, candidate, design=ONE_LOOK)


def test_holm_correction_over_several_primaries() -> None:
    """Two primaries with z ~ 2.1 each (one-sided p ~ 0.018): each alone would pass at 0.025,
    but Holm's first step needs p <= 0.0125, so neither ships; with one at z ~ 3, both do."""
    gain = 2.1 * math.sqrt(2 / 5000)
    assert _two_primaries(gain, gain).outcome != "ship"
    strong = _two_primaries(3.0 * math.sqrt(2 / 5000), gain)
    assert strong.outcome == "ship"
    assert all(result.significant_improvement for result in strong.metrics)


def test_summaries_give_the_same_decision_as_arrays() -> None:
    """Sums of ln(latency) and of errors reproduce the array-based result."""
    baseline, candidate = _arms(0.9, 0.9)
    specs = [LATENCY, ERRORS]
    from_arrays = decide(specs, baseline, candidate, design=ONE_LOOK)

    def summary(arm: dict) -> dict[str, SummaryStats]:
        logs = np.log(arm["latency"])
        return {
            "latency": SummaryStats(
                count=logs.size, sum=logs.sum(), sum_squares=(logs**2).sum(), scale="log"
            ),
            "error_rate": SummaryStats(count=arm["error_rate"].size, sum=arm["error_rate"].sum()),
        }

    from_sums = decide_from_summaries(specs, summary(baseline), summary(candidate), design=ONE_LOOK)
    assert from_sums.outcome == from_arrays.outcome
    for left, right in zip(from_sums.metrics, from_arrays.metrics, strict=True):
        assert left.p_value == pytest.approx(right.p_value, rel=1e-8)
        assert left.ci_low == pytest.approx(right.ci_low, rel=1e-8)


def test_paired_replay_uses_paired_tests() -> None:
    """Offline replay pairs each input: paired log t, McNemar and paired t."""
    rng = np.random.default_rng(3)
    base = rng.lognormal(6, 0.8, 300)
    baseline = {"latency": base, "error_rate": _errors(300, 15), "quality": rng.beta(7, 3, 300)}
    candidate = {
        "latency": base * rng.lognormal(-0.1, 0.05, 300),
        "error_rate": _errors(300, 15),
        "quality": baseline["quality"] + 0.001,
    }
    decision = decide(METRICS, baseline, candidate, design=ONE_LOOK, paired=True)
    assert [r.method for r in decision.metrics] == ["paired_t_log", "mcnemar", "paired_t"]
    assert decision.outcome == "ship"


def test_decision_round_trips_through_json() -> None:
    """A decision with unbounded interval ends survives JSON and back."""
    baseline, candidate = _arms(0.9, 1.0, n=30)
    decision = decide(METRICS, baseline, candidate, design=TEN_LOOKS, look=1)
    assert Decision.model_validate_json(decision.model_dump_json()).outcome == decision.outcome


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b, c: c.update(latency=[]), "empty"),
        (lambda b, c: c.update(latency=[1.0, float("nan"), 2.0]), "NaN"),
        (lambda b, c: c.update(latency=[-3.0, 2.0, 5.0]), "latency <= 0"),
        (lambda b, c: c.pop("quality"), "no samples for metric 'quality'"),
        (lambda b, c: c.update(error_rate=[0.0, 2.0, 1.0]), "only 0 and 1"),
    ],
)
def test_bad_arrays_are_refused(mutate, message: str) -> None:
    """Empty arms, NaN, negative latency, missing metrics and non-binary rates raise."""
    baseline, candidate = _arms(1.0, 1.0, n=50)
    mutate(baseline, candidate)
    with pytest.raises(InvalidInputError, match=message):
        decide(METRICS, baseline, candidate, design=ONE_LOOK)


def test_paired_arms_must_match_in_length() -> None:
    """paired=True with arms of different lengths is refused, naming the metric."""
    baseline, candidate = _arms(1.0, 1.0, n=50)
    candidate["latency"] = candidate["latency"][:40]
    with pytest.raises(InvalidInputError, match="'latency'"):
        decide(METRICS, baseline, candidate, design=ONE_LOOK, paired=True)


@pytest.mark.parametrize(
    ("metrics", "look", "message"),
    [
        ([ERRORS, QUALITY], 1, "no primary"),
        ([LATENCY, LATENCY], 1, "unique"),
        (METRICS, 0, "look"),
        (METRICS, 11, "look"),
    ],
)
def test_bad_requests_are_refused(metrics: list[MetricSpec], look: int, message: str) -> None:
    """No primary, duplicate names and looks outside 1..planned raise."""
    baseline, candidate = _arms(1.0, 1.0, n=50)
    with pytest.raises(InvalidInputError, match=message):
        decide(metrics, baseline, candidate, design=TEN_LOOKS, look=look)


def test_latency_margins_must_be_relative() -> None:
    """An absolute margin on latency is a spec error."""
    with pytest.raises(ValueError, match="relative margin only"):
        MetricSpec(name="latency", kind="latency", improves="decrease", margin_scale="absolute")


def test_cuped_narrows_the_interval() -> None:
    """Pre-window values correlated with the window give a tighter quality interval."""
    rng = np.random.default_rng(8)
    pre = rng.normal(0.7, 0.1, (2, 1000))
    post = pre + rng.normal(0.0, 0.05, (2, 1000))
    spec = [MetricSpec(name="quality", kind="continuous", improves="increase", role="primary")]
    plain = decide(spec, {"quality": post[0]}, {"quality": post[1]}, design=ONE_LOOK)
    adjusted = decide(
        spec,
        {"quality": post[0]},
        {"quality": post[1]},
        design=ONE_LOOK,
        baseline_pre={"quality": pre[0]},
        candidate_pre={"quality": pre[1]},
    )
    plain_width = plain.metrics[0].ci_high - plain.metrics[0].ci_low
    assert adjusted.metrics[0].ci_high - adjusted.metrics[0].ci_low < 0.6 * plain_width


def test_raw_latency_summaries_compare_means() -> None:
    """Latency sums on the raw scale use Welch on means (the ratio of mean latencies)."""
    baseline = {"latency": SummaryStats(count=1000, sum=1.0e6, sum_squares=1.25e9)}
    candidate = {"latency": SummaryStats(count=1000, sum=0.9e6, sum_squares=1.0e9)}
    decision = decide_from_summaries([LATENCY], baseline, candidate, design=ONE_LOOK)
    assert decision.metrics[0].method == "welch_t"
    assert decision.metrics[0].estimate == pytest.approx(-0.1)


def test_rate_summaries_must_count_events() -> None:
    """A rate summary whose sum is not a whole number of events is refused."""
    spec = MetricSpec(name="error_rate", kind="rate", improves="decrease", role="primary")
    baseline = {"error_rate": SummaryStats(count=100, sum=4.5)}
    candidate = {"error_rate": SummaryStats(count=100, sum=4)}
    with pytest.raises(InvalidInputError, match="count events"):
        decide_from_summaries([spec], baseline, candidate, design=ONE_LOOK)


@pytest.mark.parametrize("error_factor", [1.0, 1.3, 2.0])
def test_absolute_margins_are_reported_as_differences_consistent_with_the_verdict(
    error_factor: float,
) -> None:
    """An absolute-margin guardrail reports candidate - baseline in points with an interval;
    it is non-inferior exactly when the interval's upper end stays below the margin."""
    errors = ERRORS.model_copy(
        update={"role": "guardrail", "margin": 0.02, "margin_scale": "absolute"}
    )
    baseline, candidate = _arms(0.8, error_factor)
    decision = decide([LATENCY, errors], baseline, candidate, design=ONE_LOOK)
    result = decision.metrics[1]
    assert result.difference is not None and result.difference_high is not None
    assert result.difference_low is not None
    assert result.difference_low < result.difference < result.difference_high
    assert result.non_inferior == (result.difference_high <= 0.02)
    observed = candidate["error_rate"].mean() - baseline["error_rate"].mean()
    assert result.difference == pytest.approx(observed, abs=1e-3)
    described = next(r for r in decision.reasons if "'error_rate'" in r)
    assert f"{result.difference * 100:+.2f} points" in described
    assert decision.metrics[0].difference is None  # relative margins keep the ratio scale
