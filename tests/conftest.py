"""Shared fixtures: fresh SQLite and PostgreSQL databases for store tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from spark.db import dispose_engine, sqlite_url
from spark.temporal import SEARCH_ATTRIBUTES, SparkPlugin, test_server_path

POSTGRES_ADMIN_DSN = os.environ.get(
    "SPARK_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)


def _postgres_url(dbname: str) -> str:
    params = dict(part.split("=", 1) for part in POSTGRES_ADMIN_DSN.split())
    host, port, user = params.get("host", "127.0.0.1"), params.get("port", "5432"), params["user"]
    return f"postgresql+psycopg://{user}@{host}:{port}/{dbname}"


@pytest.fixture
def sqlite_database_url(tmp_path: Path) -> Iterator[str]:
    """A URL for an empty SQLite file, disposed after the test."""
    url = sqlite_url(tmp_path / "spark.db")
    yield url
    dispose_engine(url)


@pytest.fixture(scope="session")
def postgres_test_database() -> Iterator[str]:
    """One brand-new PostgreSQL database for the session, dropped at the end.

    Never skips: on CI PostgreSQL must be there, and a missing server is a failure.
    """
    dbname = f"spark_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    yield dbname
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@pytest.fixture
def postgres_database_url(postgres_test_database: str) -> Iterator[str]:
    """A URL whose connections see only a fresh, empty schema (via ``search_path``).

    A schema per test is ~50x cheaper than a database per test and just as isolated.
    """
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin_dsn = psycopg.conninfo.make_conninfo(POSTGRES_ADMIN_DSN, dbname=postgres_test_database)
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    url = _postgres_url(postgres_test_database) + f"?options=-csearch_path%3D{schema}"
    yield url
    dispose_engine(url)
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each store test runs once on SQLite and once on PostgreSQL."""
    name = "sqlite_database_url" if request.param == "sqlite" else "postgres_database_url"
    return str(request.getfixturevalue(name))


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    """Register every Spark search attribute (the test server has none by default)."""
    request = AddSearchAttributesRequest(
        namespace=namespace,
        search_attributes={
            key.name: IndexedValueType.ValueType(key.indexed_value_type)
            for key in SEARCH_ATTRIBUTES
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
