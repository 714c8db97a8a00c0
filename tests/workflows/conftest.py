"""Workflow tests use the session time-skipping server from tests/conftest.py."""
