"""Sample-ratio-mismatch check: do the assignment counts fit the intended traffic split?

A window is void when the chi-square p-value falls below 0.001. Checked at every look, that
level is spent over the planned looks (Pocock-type spending, about 1.6e-4 per look with 10
looks) so that a healthy window is voided with probability 0.001 however often it is looked
at; with a single look the threshold is exactly 0.001.
"""

from __future__ import annotations

from functools import lru_cache

from scipy import special, stats

from spark.errors import InvalidInputError
from spark.rsi.stats.models import SequentialDesign
from spark.rsi.stats.sequential import efficacy_bounds

SRM_THRESHOLD = 0.001


def srm_p_value(n_baseline: int, n_candidate: int, expected_share: float) -> float:
    """Chi-square goodness-of-fit p-value (1 df) of the counts against the candidate share
    (``scipy.stats.chisquare``)."""
    if n_baseline < 0 or n_candidate < 0:
        raise InvalidInputError(f"assignment counts must be >= 0, got {(n_baseline, n_candidate)}")
    if not 0 < expected_share < 1:
        raise InvalidInputError(f"expected_share must lie in (0, 1), got {expected_share!r}")
    total = n_baseline + n_candidate
    if total == 0:
        return 1.0
    expected = [total * (1.0 - expected_share), total * expected_share]
    return float(stats.chisquare([n_baseline, n_candidate], f_exp=expected).pvalue)


def has_sample_ratio_mismatch(
    n_baseline: int, n_candidate: int, expected_share: float, threshold: float = SRM_THRESHOLD
) -> bool:
    """True when the split is implausible under the intended share (p < ``threshold``)."""
    return srm_p_value(n_baseline, n_candidate, expected_share) < threshold


def srm_threshold(design: SequentialDesign, look: int) -> float:
    """The p-value threshold at ``look`` that keeps the window's false-void rate at 0.001."""
    bound = _srm_bounds(design.fractions)[look - 1]
    return float(2.0 * special.ndtr(-bound))


@lru_cache(maxsize=64)
def _srm_bounds(fractions: tuple[float, ...]) -> tuple[float, ...]:
    return efficacy_bounds(fractions, SRM_THRESHOLD / 2.0, "pocock")
