"""CUPED variance reduction: adjust each run's metric by its routing key's pre-window value.

``y_adj = y - theta (x - mean(x))`` with ``theta = cov(x, y) / var(x)`` pooled over both arms
(Deng et al. 2013). Pooling keeps the adjustment identical in both arms, so the difference of
adjusted means stays unbiased; its variance shrinks by the squared correlation of x and y.
"""

from __future__ import annotations

import numpy as np

from spark.errors import InvalidInputError
from spark.rsi.stats.inputs import FloatArray, Samples, as_samples


def cuped_theta(pre: FloatArray, post: FloatArray) -> float:
    """The regression slope of the post-window value on the pre-window value (0 if x is flat)."""
    variance = float(pre.var(ddof=1))
    if variance <= 0:
        return 0.0
    return float(np.cov(pre, post, ddof=1)[0, 1]) / variance


def cuped_adjust(
    baseline: Samples,
    candidate: Samples,
    baseline_pre: Samples,
    candidate_pre: Samples,
) -> tuple[FloatArray, FloatArray, float]:
    """Return the CUPED-adjusted baseline and candidate values and the pooled ``theta``."""
    pairs = [
        (as_samples(baseline, label="baseline"), as_samples(baseline_pre, label="baseline_pre")),
        (
            as_samples(candidate, label="candidate"),
            as_samples(candidate_pre, label="candidate_pre"),
        ),
    ]
    for post, pre in pairs:
        if post.size != pre.size:
            raise InvalidInputError(
                f"pre-window values ({pre.size}) must match the window ({post.size})"
            )
    pre_all = np.concatenate([pairs[0][1], pairs[1][1]])
    post_all = np.concatenate([pairs[0][0], pairs[1][0]])
    theta = cuped_theta(pre_all, post_all)
    centre = float(pre_all.mean())
    adjusted = [post - theta * (pre - centre) for post, pre in pairs]
    return adjusted[0], adjusted[1], theta
