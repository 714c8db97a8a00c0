"""Feedback as the client takes it: one typed score per trace, checked before it is queued.

Scores are written by the telemetry recorder in batches, like runs (``TelemetryRecorder.
submit_feedback``); a score may reach the database before its trace does, which is fine: scores
and traces are joined when read, never by a foreign key.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, ValidationError

from spark.errors import InvalidInputError
from spark.telemetry.models import FeedbackRecord


class Feedback(BaseModel):
    """A quality score for one run (user rating, grader, label)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    trace_id: str
    score: float
    label: str | None = None
    source: str = "user"


FeedbackLike = Feedback | tuple[str, float]


def feedback_records(
    scores: Iterable[FeedbackLike], now: float | None = None
) -> list[FeedbackRecord]:
    """The records to queue, stamped ``now``; ``InvalidInputError`` names the first bad score
    (a non-finite score, a trace id that is not a string) before anything is queued."""
    created_at = time.time() if now is None else now
    return [_record(item, created_at) for item in scores]


def _record(item: FeedbackLike, created_at: float) -> FeedbackRecord:
    checked = item if isinstance(item, Feedback) else _parse(item)
    return FeedbackRecord(
        checked.trace_id, float(checked.score), created_at, checked.label, checked.source
    )


def _parse(item: tuple[str, float]) -> Feedback:
    try:
        trace_id, score = item
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"feedback {item!r} must be a (trace_id, score) pair") from exc
    return checked_feedback(trace_id, score)


def checked_feedback(
    trace_id: str, score: float, label: str | None = None, source: str = "user"
) -> Feedback:
    """A ``Feedback``, or ``InvalidInputError`` saying what is wrong (a non-finite score...)."""
    try:
        return Feedback(trace_id=trace_id, score=score, label=label, source=source)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInputError(
            f"feedback score for trace {trace_id!r} must be finite, with text ids: {problems}"
        ) from exc
