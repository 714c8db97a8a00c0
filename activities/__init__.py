"""Temporal activities, one module per RSI phase. Thin: load inputs, call ``spark``, persist,
return a pydantic result. Every one is idempotent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.ab_test import ABTestActivities
from activities.analysis import AnalysisActivities
from activities.candidate import CandidateActivities
from activities.deployment import DeploymentActivities
from activities.deps import ActivityDeps
from activities.hypotheses import HypothesisActivities
from activities.learning import LearningActivities
from activities.online_ab import OnlineABActivities
from activities.planning import PlanningActivities
from activities.reviews import ReviewActivities

__all__ = ["ActivityDeps", "build_activities"]


def build_activities(deps: ActivityDeps) -> list[Callable[..., Any]]:
    """Every activity of the RSI loop, bound to ``deps``."""
    planning = PlanningActivities(deps)
    analysis = AnalysisActivities(deps)
    hypotheses = HypothesisActivities(deps)
    candidate = CandidateActivities(deps)
    ab_test = ABTestActivities(deps)
    online = OnlineABActivities(deps)
    deployment = DeploymentActivities(deps)
    learning = LearningActivities(deps)
    reviews = ReviewActivities(deps)
    return [
        planning.plan_cycle,
        planning.release_graph_loop,
        analysis.analyze_graph,
        hypotheses.generate_hypotheses,
        hypotheses.validate_hypotheses,
        reviews.open_review,
        reviews.close_review,
        candidate.create_candidate,
        ab_test.replay_ab_test,
        online.start_online_window,
        online.online_ab_look,
        online.end_online_window,
        deployment.deploy_version,
        deployment.check_health,
        deployment.rollback_deployment,
        learning.record_attempt,
        learning.extract_patterns,
    ]
