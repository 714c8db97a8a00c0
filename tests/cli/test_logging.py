"""Worker JSON logs render exceptions as text, from stdlib loggers (Temporal's workflow and
activity loggers) and from structlog alike."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from spark.logging import configure_logging


def _boom() -> None:
    raise ValueError("boom")


def test_json_logs_render_exceptions_as_tracebacks(capsys: pytest.CaptureFixture[str]) -> None:
    """``logger.exception`` writes one JSON line whose ``exception`` is the formatted traceback
    (never ``<traceback object at 0x...>``), on stderr; stdout stays empty."""
    configure_logging("INFO", json=True)
    try:
        _boom()
    except ValueError:
        logging.getLogger("temporalio.activity").exception("activity failed")
        structlog.get_logger("spark.test").exception("structlog failed")
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [json.loads(line) for line in captured.err.splitlines()]
    assert [line["event"] for line in lines] == ["activity failed", "structlog failed"]
    for line in lines:
        assert "Traceback (most recent call last)" in line["exception"]
        assert "ValueError: boom" in line["exception"]
        assert "traceback object" not in json.dumps(line)
        assert "exc_info" not in line
