"""Deployment strategies as the routing stages a new version passes through before it is active.

* ``direct``: all traffic at once; the post-deploy monitoring window is the only safety net.
* ``canary``: a small share first (``canary_share``), held and compared side by side with the
  active version, then everything.
* ``gradual``: rising shares (``rollout_steps``, e.g. 10%, 25%, 50%), each held and compared,
  then everything. Sticky routing keys keep every user already moved on the new version.
* ``blue_green``: the new (green) version takes all traffic at once while the old (blue) one
  stays active in the routing table, so switching back is a single routing change; green is
  held and checked against blue's recent traffic, then made active.

Every stage ends with a health check; a regression takes the new version out of routing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Strategy = Literal["direct", "canary", "blue_green", "gradual"]


class RolloutStage(BaseModel):
    """Route ``share`` of traffic to the new version for ``hold_s`` seconds, then check health.

    ``concurrent``: compare both arms over the hold (they share the traffic); otherwise compare
    the new version with the old one's traffic before the stage (the new one has all of it).
    """

    model_config = ConfigDict(frozen=True)

    share: float = Field(gt=0, le=1)
    hold_s: float = Field(gt=0)
    concurrent: bool = True


def rollout_stages(
    strategy: Strategy,
    *,
    canary_share: float,
    rollout_steps: Sequence[float],
    hold_s: float,
) -> list[RolloutStage]:
    """The stages before the final switch (none for ``direct``)."""
    if strategy == "direct":
        return []
    if strategy == "canary":
        return [RolloutStage(share=canary_share, hold_s=hold_s)]
    if strategy == "gradual":
        return [RolloutStage(share=share, hold_s=hold_s) for share in rollout_steps]
    return [RolloutStage(share=1.0, hold_s=hold_s, concurrent=False)]
