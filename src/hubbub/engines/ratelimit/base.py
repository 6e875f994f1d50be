"""The rate-limiter interface.

Contract: ``take`` is a token bucket per key of capacity ``burst`` refilled at ``rate`` tokens per second;
it returns 0 when a token was taken, or the seconds until one will be available (and takes nothing).
Buckets of unused keys may be forgotten (they are full anyway). A limiter shared by a cluster may lend a node
tokens in advance (engines/ratelimit/redis.py): never more in all than the bucket grants, save that tokens
still lent while it refills come on top, at most ``burst // 8`` per node; buckets under 16 stay exact.
"""

from __future__ import annotations

import abc


class RateLimiter(abc.ABC):
    @abc.abstractmethod
    async def take(self, key: str, rate: float, burst: int) -> float: ...

    def local(self) -> RateLimiter:
        """Buckets in this node's memory only, for limits that protect the node rather than the cluster and
        are checked too often to pay a round trip each (reads: services/limits.py)."""
        return self
