"""Fixtures for the data-lifecycle tests: each runs on SQLite and on a throwaway PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import servers


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[servers.PostgresServer]:
    server = servers.acquire_postgres()
    yield server
    servers.release("pg")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[servers.RedisServer]:
    server = servers.acquire_redis()
    yield server
    servers.release("redis")


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> dict[str, str]:
    """Node overrides for one storage engine: ``{}`` (SQLite in the data dir) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return {}
    pg: servers.PostgresServer = request.getfixturevalue("postgres_server")
    return {"database": pg.create_database("life")}
