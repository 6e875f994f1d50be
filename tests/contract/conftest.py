"""Fixtures for the engine contract suites: a throwaway Redis and PostgreSQL for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import servers


@pytest.fixture(scope="session")
def redis_server() -> Iterator[servers.RedisServer]:
    server = servers.acquire_redis()
    yield server
    servers.release("redis")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[servers.PostgresServer]:
    server = servers.acquire_postgres()
    yield server
    servers.release("pg")
