"""Workflow tests use the session time-skipping server from tests/conftest.py, and run the
workflow module as the worker does: compiled once for every sandboxed run."""

from __future__ import annotations

import pytest

from spark.sandbox_code import share_module_code
from workflows.rsi import RSIWorkflow


@pytest.fixture(autouse=True, scope="session")
def _shared_workflow_code() -> None:
    """The finder ``spark.worker.build_worker`` installs, installed for these tests too."""
    share_module_code(RSIWorkflow.__module__)
