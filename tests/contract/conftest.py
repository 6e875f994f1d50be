"""Fixtures for the engine contract suites: a throwaway Redis, Redis Cluster and PostgreSQL for the whole
session. A Redis engine's suite runs in two flavours, ``redis`` (one server) and ``redis-cluster`` (three
masters): ``redis_url`` gives the URL of the flavour a test was parametrised with."""

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
def redis_cluster() -> Iterator[servers.RedisClusterServers]:
    server = servers.acquire_redis_cluster()
    yield server
    servers.release("redis-cluster")


#: The flavours a Redis engine's contract runs in (with "memory" for the in-process engine).
REDIS_FLAVOURS = ["redis", "redis-cluster"]


def redis_url(request: pytest.FixtureRequest) -> str:
    """The URL of the Redis flavour ``request.param`` names (starting its servers once per session)."""
    if request.param == "redis-cluster":
        return str(request.getfixturevalue("redis_cluster").url)
    return str(request.getfixturevalue("redis_server").url)


@pytest.fixture(scope="session")
def postgres_replica() -> Iterator[tuple[servers.PostgresServer, servers.PostgresReplica]]:
    """A throwaway PostgreSQL primary and a real streaming replica of it, for the session."""
    pair = servers.acquire_replica()
    yield pair
    servers.release("pg-replica")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[servers.PostgresServer]:
    server = servers.acquire_postgres()
    yield server
    servers.release("pg")
