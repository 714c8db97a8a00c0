"""Sample-size planning: how many runs per arm a window needs, and so how long it must last.

A fixed-horizon sample size comes from the baseline's recorded spread and the minimum effect
worth detecting, and is then inflated by the sequential design's factor (the extra maximum
sample that buys the right to stop early). The spread is taken at an upper confidence limit
(``variance_confidence``, 0.8 by default) rather than at its point estimate, so that a noisy
pilot does not leave the window short of its power half of the time (Browne 1995).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel
from scipy import special

from spark.errors import InvalidInputError
from spark.rsi.stats.comparison import critical_value
from spark.rsi.stats.inputs import FloatArray, Samples, as_metric_samples
from spark.rsi.stats.models import MetricKind, MetricSpec, SequentialDesign
from spark.rsi.stats.sequential import boundaries

MAX_SHRINKAGE_ITERATIONS = 50
DEGENERATE_RATE_CONFIDENCE = 0.8
"""Confidence of the rate bound used when the baseline never (or always) had the event."""


def fixed_sample_size_t(standardised_effect: float, alpha: float, power: float) -> int:
    """Per-arm n of a one-sided two-sample t test at level ``alpha`` with the given power.

    Exact (noncentral t) power; e.g. Cohen's d = 0.5 at alpha = 0.025, power 0.8 gives 64.
    """
    if standardised_effect <= 0:
        raise InvalidInputError(f"the effect must be > 0, got {standardised_effect!r}")
    z_sum = -special.ndtri(alpha) - special.ndtri(1.0 - power)
    n = max(2, math.ceil(2.0 * (z_sum / standardised_effect) ** 2))
    while n > 2 and _t_power(n - 1, standardised_effect, alpha) >= power:
        n -= 1
    while _t_power(n, standardised_effect, alpha) < power:
        n += 1
    return n


def _t_power(n: int, effect: float, alpha: float) -> float:
    df = 2.0 * n - 2.0
    crit = critical_value(alpha, df)
    return float(1.0 - special.nctdtr(df, effect * math.sqrt(n / 2.0), crit))


def fixed_sample_size_rates(
    p_baseline: float, p_candidate: float, alpha: float, power: float
) -> int:
    """Per-arm n of the pooled two-proportion z test (Fleiss, without continuity correction)."""
    if not (0 < p_baseline < 1 and 0 < p_candidate < 1) or p_baseline == p_candidate:
        raise InvalidInputError(
            f"rates must differ and lie in (0, 1), got {p_baseline}, {p_candidate}"
        )
    pooled = (p_baseline + p_candidate) / 2.0
    z_alpha, z_beta = -special.ndtri(alpha), -special.ndtri(1.0 - power)
    spread = z_alpha * math.sqrt(2.0 * pooled * (1 - pooled)) + z_beta * math.sqrt(
        p_baseline * (1 - p_baseline) + p_candidate * (1 - p_candidate)
    )
    return math.ceil((spread / (p_candidate - p_baseline)) ** 2)


def upper_sd(values: FloatArray, confidence: float | None) -> float:
    """Sample SD, or its one-sided upper confidence limit at ``confidence`` (chi-square)."""
    sd = float(values.std(ddof=1))
    if confidence is None:
        return sd
    df = values.size - 1
    return sd * math.sqrt(df / float(special.chdtri(df, confidence)))


def _standardised_effect(
    values: FloatArray, kind: MetricKind, effect: float, confidence: float | None
) -> float:
    """The effect over the spread the engine's test will see.

    The engine guards every non-rate test with the variance of the pooled runs under no
    difference (``comparison.guarded``), which holds the between-arm difference as well: with
    equal arms its spread is ``sqrt(sd^2 + d^2 / 4)``. Planning with it keeps the planned power.
    """
    if kind == "latency":
        shift, sd = abs(math.log1p(effect)), upper_sd(np.log(values), confidence)
    else:
        shift, sd = abs(effect * float(values.mean())), upper_sd(values, confidence)
    return shift / math.sqrt(sd * sd + shift * shift / 4.0)


def _rate_bounds(values: FloatArray, confidence: float | None) -> list[float]:
    rate, n = float(values.mean()), values.size
    if confidence is None:
        return [rate]
    z = float(special.ndtri(confidence))
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(centre - half, 1e-9), rate, min(centre + half, 1 - 1e-9)]


def fixed_sample_size(
    baseline_samples: Samples,
    kind: MetricKind,
    min_relative_effect: float,
    *,
    alpha: float,
    power: float,
    variance_confidence: float | None = 0.8,
) -> int:
    """Per-arm n of a single-look test at one-sided ``alpha`` (the fixed-horizon comparator)."""
    values = _pilot(baseline_samples, kind)
    _check_effect(min_relative_effect)
    if kind == "rate":
        sizes = [
            fixed_sample_size_rates(p, p * (1 + min_relative_effect), alpha, power)
            for p in _rate_bounds(values, variance_confidence)
        ]
        return max(sizes)
    effect = _standardised_effect(values, kind, min_relative_effect, variance_confidence)
    return fixed_sample_size_t(effect, alpha, power)


def plan_sample_size(
    baseline_samples: Samples,
    kind: MetricKind,
    min_relative_effect: float,
    *,
    design: SequentialDesign,
    variance_confidence: float | None = 0.8,
) -> int:
    """Samples per arm for the design to ship a candidate with the minimum effect at its power.

    ``min_relative_effect`` is signed: -0.10 is a 10% decrease (it matters on log scales, where
    a 10% decrease is a bigger step than a 10% increase). The fixed-horizon size is inflated by
    the sequential design's factor.
    """
    fixed = fixed_sample_size(
        baseline_samples,
        kind,
        min_relative_effect,
        alpha=design.alpha / 2.0,
        power=design.power,
        variance_confidence=variance_confidence,
    )
    return _ceil(fixed * boundaries(design).inflation)


def plan_noninferiority(
    baseline_samples: Samples,
    spec: MetricSpec,
    *,
    design: SequentialDesign,
    variance_confidence: float | None = 0.8,
) -> int:
    """Samples per arm for a guardrail to be shown non-inferior within its margin when the
    candidate truly equals the baseline."""
    alpha = design.alpha / 2.0
    if spec.margin_scale == "absolute" and spec.kind == "rate":
        fixed = _rate_margin_sample(
            baseline_samples, spec.margin, alpha, design.power, variance_confidence
        )
    elif spec.margin_scale == "absolute":
        values = _pilot(baseline_samples, spec.kind)
        effect = spec.margin / upper_sd(values, variance_confidence)
        fixed = fixed_sample_size_t(effect, alpha, design.power)
    elif spec.kind == "rate":
        values = _pilot(baseline_samples, spec.kind)
        fixed = max(
            _rate_noninferiority(p, p * spec.margin, alpha, design.power)
            for p in _rate_bounds(values, variance_confidence)
        )
    else:
        worse = spec.margin if spec.improves == "decrease" else -spec.margin
        fixed = fixed_sample_size(
            baseline_samples,
            spec.kind,
            worse,
            alpha=alpha,
            power=design.power,
            variance_confidence=variance_confidence,
        )
    return _ceil(fixed * boundaries(design).inflation)


def _rate_margin_sample(
    baseline_samples: Samples, margin: float, alpha: float, power: float, confidence: float | None
) -> int:
    """Fixed-horizon runs per arm to show a rate within an absolute ``margin``.

    The spread is the pilot's (at its upper confidence limit); a pilot that never (or always) had
    the event uses the rate's Wilson bound instead. The rate tests shrink each arm by half an
    event ((x + 0.5) / (n + 1)), which matters when events are rare: the size is solved with the
    spread of the shrunk rate at that size (a fixed point), so a window over a rare event is not
    planned too short to show its margin.
    """
    values = as_metric_samples(baseline_samples, "rate", "baseline_samples")
    rate = float(values.mean())
    if rate in (0.0, 1.0):
        rate = max(_rate_bounds(values, DEGENERATE_RATE_CONFIDENCE), key=lambda p: p * (1.0 - p))
        spread = math.sqrt(rate * (1.0 - rate))
    else:
        spread = upper_sd(values, confidence)
    size = fixed_sample_size_t(margin / spread, alpha, power)
    for _ in range(MAX_SHRINKAGE_ITERATIONS):
        shrunk = (rate * size + 0.5) / (size + 1.0)
        wider = max(spread, math.sqrt(shrunk * (1.0 - shrunk)))
        resized = fixed_sample_size_t(margin / wider, alpha, power)
        if resized == size:
            break
        size = resized
    return max(size, _rare_event_floor(margin, alpha, power))


def _rare_event_floor(margin: float, alpha: float, power: float) -> int:
    """The runs per arm below which no margin can be shown for rare events: the rate tests
    shrink each arm by half an event ((x + 0.5) / (n + 1)), so with (almost) no events the
    difference's standard error is about 1 / n, and showing ``margin`` needs
    ``n >= (z_alpha + z_beta) / margin``."""
    z_sum = -special.ndtri(alpha) - special.ndtri(1.0 - power)
    return math.ceil(z_sum / margin)


def _rate_noninferiority(rate: float, margin: float, alpha: float, power: float) -> int:
    z_sum = -special.ndtri(alpha) - special.ndtri(1.0 - power)
    return math.ceil(z_sum * z_sum * 2.0 * rate * (1.0 - rate) / (margin * margin))


class WindowPlan(BaseModel):
    """The per-metric samples a window needs and the runs per arm that deliver all of them."""

    samples_per_arm: dict[str, int]
    runs_per_arm: int
    limiting_metric: str
    power_per_metric: float


def plan_window(
    metrics: Sequence[MetricSpec],
    baseline: Mapping[str, Samples],
    min_effects: Mapping[str, float],
    *,
    design: SequentialDesign,
    variance_confidence: float | None = 0.8,
) -> WindowPlan:
    """Plan a whole window: primaries at their minimum effects, guardrails at their margins.

    Shipping needs every metric to pass, so each is planned at power ``1 - beta / m`` (the
    union bound keeps the joint power at least ``design.power``). A metric recorded on only
    some runs (e.g. quality feedback) needs proportionally more runs: its coverage is read
    from the lengths of the baseline arrays.
    """
    if not metrics:
        raise InvalidInputError("plan_window needs at least one metric")
    per_metric = 1.0 - (1.0 - design.power) / len(metrics)
    metric_design = design.model_copy(update={"power": per_metric})
    longest = max(len(baseline[m.name]) for m in metrics if m.name in baseline) if baseline else 0
    samples = {
        m.name: _plan_metric(m, baseline, min_effects, metric_design, variance_confidence)
        for m in metrics
    }
    runs = {name: math.ceil(n * longest / len(baseline[name])) for name, n in samples.items()}
    limiting = max(runs, key=lambda name: runs[name])
    return WindowPlan(
        samples_per_arm=samples,
        runs_per_arm=runs[limiting],
        limiting_metric=limiting,
        power_per_metric=per_metric,
    )


def _plan_metric(
    spec: MetricSpec,
    baseline: Mapping[str, Samples],
    min_effects: Mapping[str, float],
    design: SequentialDesign,
    confidence: float | None,
) -> int:
    if spec.name not in baseline:
        raise InvalidInputError(f"no baseline samples for metric {spec.name!r}")
    if spec.role == "guardrail":
        return plan_noninferiority(
            baseline[spec.name], spec, design=design, variance_confidence=confidence
        )
    if spec.name not in min_effects:
        raise InvalidInputError(f"primary metric {spec.name!r} needs a minimum effect")
    return plan_sample_size(
        baseline[spec.name],
        spec.kind,
        min_effects[spec.name],
        design=design,
        variance_confidence=confidence,
    )


def _ceil(value: float) -> int:
    """Round up, ignoring the last few ulps of numerical noise in the inflation factor."""
    return math.ceil(value - 1e-9 * value)


def window_hours(runs_per_arm: int, runs_per_hour: float, candidate_share: float = 0.5) -> float:
    """Hours of traffic until both arms hold ``runs_per_arm`` runs at the given split."""
    if runs_per_hour <= 0 or not 0 < candidate_share < 1:
        raise InvalidInputError(
            f"need runs_per_hour > 0 and a share in (0, 1), got {runs_per_hour}, {candidate_share}"
        )
    return runs_per_arm / (runs_per_hour * min(candidate_share, 1.0 - candidate_share))


def _pilot(values: Samples, kind: MetricKind) -> FloatArray:
    array = as_metric_samples(values, kind, "baseline_samples")
    if kind != "rate" and float(array.std(ddof=1)) == 0:
        raise InvalidInputError("baseline_samples have no spread: the sample size is undefined")
    if kind == "rate" and float(array.mean()) in (0.0, 1.0):
        raise InvalidInputError(
            "baseline_samples of a rate are all 0 or all 1: the rate is unknown"
        )
    return array


def _check_effect(effect: float) -> None:
    if not math.isfinite(effect) or effect == 0 or effect <= -1:
        raise InvalidInputError(f"min_relative_effect must be non-zero and > -1, got {effect!r}")
