"""The replay decision judges a hypothesis' stated trade-off, and nothing beyond it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spark.rsi.online import AB_METRICS, judged_spec
from spark.rsi.replay import ReplaySamples, decide_replay


def _retry_like(latency_factor: float, n: int = 400, seed: int = 2) -> ReplaySamples:
    """Pairs where the baseline fails 20% of runs and the candidate never does, and the
    candidate's completed runs are ``latency_factor`` slower."""
    rng = np.random.default_rng(seed)
    samples = ReplaySamples()
    errors = (rng.random(n) < 0.2).astype(float)
    latency = rng.lognormal(math.log(90.0), 0.3, n)
    ok = errors == 0
    samples.baseline = {
        "error_rate": errors.tolist(),
        "latency": latency[ok].tolist(),
        "cost": [0.0] * int(ok.sum()),
    }
    samples.candidate = {
        "error_rate": [0.0] * n,
        "latency": (latency[ok] * latency_factor).tolist(),
        "cost": [0.0] * int(ok.sum()),
    }
    return samples


def test_a_stated_latency_cost_widens_the_latency_guardrail() -> None:
    """Errors cured at +25% latency: shipped when the hypothesis stated a 10% latency cost
    (margin 20% + 10%), not when it claimed none (margin 20%)."""
    samples = _retry_like(1.25)
    stated = decide_replay(samples, "error_rate", alpha=0.02, expected_effects={"latency": 0.10})
    unstated = decide_replay(samples, "error_rate", alpha=0.02)
    assert stated.outcome == "ship"
    assert unstated.outcome != "ship"
    latency = next(m for m in unstated.metrics if m.name == "latency")
    assert latency.margin == 0.20 and not latency.non_inferior


def test_a_stated_cost_never_more_than_doubles_a_margin() -> None:
    """An untrusted claim of a 50% latency cost opens the guardrail to 40%, not 70%."""
    spec = judged_spec("latency", "error_rate", {"latency": 0.5})
    assert spec.margin == pytest.approx(2 * AB_METRICS["latency"].margin)
    assert (
        decide_replay(
            _retry_like(1.45), "error_rate", alpha=0.02, expected_effects={"latency": 0.5}
        ).outcome
        != "ship"
    )


@pytest.mark.parametrize(
    ("name", "expected", "margin"),
    [
        ("latency", {"latency": -0.3}, 0.20),  # an expected improvement widens nothing
        ("quality", {"quality": -0.02}, 0.07),  # quality improves by increasing
        ("error_rate", {"error_rate": 0.5}, 0.02),  # absolute margins are not widened
    ],
)
def test_judged_margins(name: str, expected: dict[str, float], margin: float) -> None:
    spec = judged_spec(name, "cost", expected)  # type: ignore[arg-type]
    assert spec.role == "guardrail"
    assert spec.margin == pytest.approx(margin)


def test_the_primary_keeps_its_spec() -> None:
    assert judged_spec("latency", "latency", {"latency": 0.3}).role == "primary"


def test_an_unproven_improvement_is_inconclusive_not_rejected() -> None:
    """Replay that cannot show the primary's gain says so; rejection is kept for harm (so a
    replay gate lets the online window gather the evidence)."""
    samples = _retry_like(1.0, n=40)
    samples.baseline["error_rate"] = [0.0] * 39 + [1.0]
    decision = decide_replay(samples, "error_rate", alpha=0.02)
    assert decision.outcome == "inconclusive"
    assert any("did not reach significance" in reason for reason in decision.reasons)
