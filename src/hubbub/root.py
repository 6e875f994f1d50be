"""The composition root: the one place that builds a node's engines and services (issue 13.3).

Modelled on Synapse's ``HomeServer``: every component has a ``get_<name>()`` getter that builds it on first
use, from the config and the other getters, and returns the same object afterwards (``cached``). So:

- **Implementations are chosen here and nowhere else**: the embedded engines by default, Redis and
  PostgreSQL when configured, S3 when a bucket is set.
- **What is built follows from what is asked for.** ``hubbub serve`` (``node.py``) asks for what its role
  needs; ``hubbub admin`` asks for the admin service only, so it builds no hub, no gateway and no HTTP app,
  and starts no background task.
- **Services take what they use** (a routing engine, a registry, a limiter...), never the root or the
  ``Services`` bag, so each can be built in a test from memory engines alone.
- **No module-level state**: a test builds two roots in one process and gets two independent nodes.

The role decides what runs, not only which routes are mounted (docs/architecture.md, "Roles and the
composition root"):

==============================  =====  =======  ========  =====
what                            all    gateway  platform  admin
==============================  =====  =======  ========  =====
HTTP API routes                 yes    -        yes       -
``/ws``, ``Gateway``            yes    yes      -         -
hub heartbeat/auth sweeper      yes    yes      -         -
registry sweep (dead nodes)     yes    yes      -         -
node queue consumer             yes    yes      yes       -
cluster liveness, load report   yes    yes      yes       -
call sweeper (ends lost calls)  yes    yes      -         -
retention purge loop            yes    -        yes       -
export sweeper                  yes    -        yes       -
search indexer                  yes    -        yes       -
webhook dispatcher              yes    -        yes       -
tracer buffer flush             yes    yes      yes       -
==============================  =====  =======  ========  =====

The admin tool builds the services its commands need (admin, retention, exports, account closing) and runs
their work once, in the foreground (``hubbub admin purge``...), never their loops.

A platform node holds no connections, so nothing renews or sweeps there; it still reads its queue, because
it is a member of the cluster and every node's broadcasts (hot-group news, cache drops) reach every member.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from hubbub.config import Config
from hubbub.core.ids import MessageIds
from hubbub.core.stats import Reading, StatsProvider
from hubbub.engines.attention.base import Attention
from hubbub.engines.blobs.base import BlobStore
from hubbub.engines.calls.base import CallStore
from hubbub.engines.cluster.base import Cluster
from hubbub.engines.hotgroups.base import HotState
from hubbub.engines.ratelimit.base import RateLimiter
from hubbub.engines.redis_keys import Keys
from hubbub.engines.redis_link import RedisLink
from hubbub.engines.registry.base import Registry
from hubbub.engines.routing.base import Routing
from hubbub.engines.storage.base import Storage
from hubbub.proof.trace import Tracer, build_tracer
from hubbub.services import content
from hubbub.services.accounts import AccountService
from hubbub.services.actions import ActionService
from hubbub.services.admin import AdminService
from hubbub.services.auth import AuthService
from hubbub.services.calls import CallService
from hubbub.services.canaries import Canaries
from hubbub.services.closing import AccountClosing
from hubbub.services.container import Services
from hubbub.services.export import ExportService
from hubbub.services.friends import FriendService
from hubbub.services.groups import GroupService
from hubbub.services.hot import HotGroups, HotPolicy
from hubbub.services.joins import JoinService
from hubbub.services.media import MediaService
from hubbub.services.messages import MessageService
from hubbub.services.passwords import Passwords
from hubbub.services.presence import PresenceService
from hubbub.services.reports import ReportService
from hubbub.services.retention import RetentionService
from hubbub.services.search import SearchIndexer, SearchService
from hubbub.services.social import SocialService
from hubbub.services.words import WordFilter

if TYPE_CHECKING:
    from hubbub.services.bots import BotService
    from hubbub.services.egress import Egress
    from hubbub.services.oidc import OidcService
    from hubbub.services.webhooks import Dispatcher, IncomingWebhooks, OutgoingWebhooks

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from aiohttp import web

    from hubbub.gateway.hub import Hub
    from hubbub.gateway.server import Gateway
    from hubbub.metrics import NodeMetrics
    from hubbub.services.webpush import WebPushService

T = TypeVar("T")


def cached(build: Callable[[Root], T]) -> Callable[[Root], T]:
    """Build on the first call, return the same object on every later one (Synapse's ``cache_in_self``).
    A getter that asks for itself while building (a dependency cycle) is an error, not a recursion."""
    name = build.__name__

    @functools.wraps(build)
    def get(root: Root) -> T:
        if name in root._built:
            return root._built[name]  # type: ignore[no-any-return]
        if name in root._building:
            raise RuntimeError(f"dependency cycle: {name} needs itself")
        root._building.add(name)
        try:
            made = build(root)
        finally:
            root._building.discard(name)
        root._built[name] = made
        root._order.append(name)
        return made

    return get


class Root:
    def __init__(self, config: Config, *, tool: bool = False) -> None:
        """``tool``: a command-line tool (``hubbub admin``), nobody's node: it serves nothing."""
        self.config = config.validate() if tool else config.validate_node()
        self.tool = tool
        self.node_id = config.effective_node_id
        self._built: dict[str, Any] = {}
        self._building: set[str] = set()
        self._order: list[str] = []

    # -- what this process does ---------------------------------------------------------------------
    @property
    def serves_websocket(self) -> bool:
        return not self.tool and self.config.role in ("all", "gateway")

    @property
    def serves_api(self) -> bool:
        return not self.tool and self.config.role in ("all", "platform")

    def built(self, name: str) -> bool:
        """Was ``get_<name>`` called (so the component exists and may need closing)?"""
        return f"get_{name}" in self._built

    # -- engines ------------------------------------------------------------------------------------
    @cached
    def get_storage(self) -> Storage:
        from hubbub.engines.storage.sql import SqlStorage

        if not self.config.database:
            self.config.ensure_data_dir()
        return SqlStorage(
            self.config.database_url,
            is_hot=self.get_hot_policy().group_is_hot,
            first_user_admin=self.config.first_user_admin,
            replica_url=self.config.database_replica_url,
        )

    @cached
    def get_redis_link(self) -> RedisLink | None:
        """The node's view of its Redis (cluster only): commands sent, and whether it answers."""
        return RedisLink() if self.config.redis else None

    @cached
    def get_redis(self) -> aioredis.Redis:
        """The client the cluster engines (membership, registry, routing) share."""
        from hubbub.engines.redis_link import connect

        link = self.get_redis_link()
        assert link is not None, "no Redis configured"
        return connect(self.config.redis, link)

    @cached
    def get_redis_keys(self) -> Keys:
        return Keys()

    @cached
    def get_cluster(self) -> Cluster:
        """Membership: liveness, load reports, node numbers, Redis health."""
        if self.config.redis:
            from hubbub.engines.cluster.redis import RedisCluster

            link = self.get_redis_link()
            assert link is not None
            return RedisCluster(
                self.get_redis(), self.node_id, url=self.config.redis, link=link, keys=self.get_redis_keys()
            )
        from hubbub.engines.cluster.memory import MemoryCluster

        return MemoryCluster(self.node_id)

    @cached
    def get_registry(self) -> Registry:
        """Which connection holds each (user, terminal), and presence."""
        if self.config.redis:
            from hubbub.engines.registry.redis import RedisRegistry

            return RedisRegistry(
                self.get_redis(), self.node_id, self.get_cluster(), keys=self.get_redis_keys()
            )
        from hubbub.engines.registry.memory import MemoryRegistry

        return MemoryRegistry(self.node_id)

    @cached
    def get_routing(self) -> Routing:
        """Pushes, closes and node broadcasts: per-node Redis streams in a cluster, direct calls on one node."""
        if self.config.redis:
            from hubbub.engines.routing.redis import RedisRouting

            return RedisRouting(
                self.get_redis(),
                self.node_id,
                self.get_registry(),
                self.get_cluster(),
                keys=self.get_redis_keys(),
            )
        from hubbub.engines.routing.memory import MemoryRouting

        return MemoryRouting(self.node_id)

    @cached
    def get_call_store(self) -> CallStore:
        """Live calls where every node sees them: Redis for a cluster, else in-process (engines/calls)."""
        if self.config.redis:
            from hubbub.engines.calls.redis import RedisCallStore
            from hubbub.engines.redis_link import connect

            link = self.get_redis_link()
            assert link is not None
            return RedisCallStore(connect(self.config.redis, link, timeout=2.0))
        from hubbub.engines.calls.memory import MemoryCallStore

        return MemoryCallStore()

    @cached
    def get_limiter(self) -> RateLimiter:
        """Token buckets shared by the cluster through Redis, else in-process. A tool limits nobody."""
        if self.config.redis and not self.tool:
            from hubbub.engines.ratelimit.redis import RedisRateLimiter
            from hubbub.engines.redis_link import connect

            link = self.get_redis_link()
            assert link is not None
            return RedisRateLimiter(self.config.redis, client=connect(self.config.redis, link, timeout=2.0))
        from hubbub.engines.ratelimit.memory import MemoryRateLimiter

        return MemoryRateLimiter()

    @cached
    def get_hot_state(self) -> HotState:
        """Recent messages of hot groups: in Redis for a cluster, else in-process. The tool's too: its purge
        (``hubbub admin purge``) must drop purged messages from the cluster's cache."""
        if self.config.redis:
            import redis.asyncio as aioredis

            from hubbub.engines.hotgroups.redis import RedisHotState
            from hubbub.engines.redis_link import watched_client

            link = self.get_redis_link()
            assert link is not None
            # A blocking pool: a burst of pulls waits for a connection instead of failing for want of one.
            client = watched_client(
                self.config.redis,
                link,
                pool_class=aioredis.BlockingConnectionPool,
                max_connections=64,
                timeout=5,
                socket_connect_timeout=2,
                socket_timeout=5,
            )
            return RedisHotState(client, capacity=self.config.hot_cache_messages)
        from hubbub.engines.hotgroups.memory import MemoryHotState

        return MemoryHotState(self.config.hot_cache_messages)

    @cached
    def get_blobs(self) -> BlobStore:
        """Uploaded files: an S3-compatible bucket when ``s3_bucket`` is set, else a local directory."""
        c = self.config
        if c.s3_bucket:
            from hubbub.engines.blobs.s3 import S3BlobStore

            return S3BlobStore(
                endpoint=c.s3_endpoint,
                bucket=c.s3_bucket,
                access_key=c.s3_access_key,
                secret_key=c.s3_secret_key,
                region=c.s3_region,
                prefix=c.s3_prefix,
            )
        from hubbub.engines.blobs.local import LocalBlobStore

        return LocalBlobStore(c.blob_dir or f"{c.data_dir}/blobs")

    # -- services -----------------------------------------------------------------------------------
    @cached
    def get_hot_policy(self) -> HotPolicy:
        return HotPolicy.of(self.config)

    @cached
    def get_ids(self) -> MessageIds:
        return MessageIds(self.node_id)

    @cached
    def get_passwords(self) -> Passwords:
        """One hasher, and one bounded pool, for accounts and admins."""
        return Passwords(self.config)

    @cached
    def get_friends(self) -> FriendService:
        return FriendService(
            self.config, self.get_storage(), self.get_routing(), self.get_registry(), self.get_limiter()
        )

    @cached
    def get_hot(self) -> HotGroups:
        return HotGroups(self.config, self.get_storage(), self.get_routing(), self.get_hot_state())

    @cached
    def get_media(self) -> MediaService:
        return MediaService(self.config, self.get_storage(), self.get_blobs())

    @cached
    def get_words(self) -> WordFilter:
        return WordFilter(self.config, self.get_storage())

    @cached
    def get_content_rules(self) -> content.ContentRules:
        return content.ContentRules(self.config, self.get_media(), self.get_words())

    @cached
    def get_groups(self) -> GroupService:
        return GroupService(
            self.config,
            self.get_storage(),
            self.get_routing(),
            self.get_registry(),
            self.get_limiter(),
            self.get_friends(),
            self.get_ids(),
            self.get_hot(),
            self.get_media(),
        )

    @cached
    def get_auth(self) -> AuthService:
        return AuthService(
            self.config, self.get_storage(), self.get_routing(), self.get_limiter(), self.get_passwords()
        )

    @cached
    def get_accounts(self) -> AccountService:
        return AccountService(self.get_storage(), self.get_media())

    @cached
    def get_tracer(self) -> Tracer:
        """Per-message tracing for admins (proof/trace.py): in Redis for a cluster, else in this process."""
        return build_tracer(self.config, self.get_redis_link())

    @cached
    def get_messages(self) -> MessageService:
        messages = MessageService(
            self.config,
            self.get_storage(),
            self.get_routing(),
            self.get_limiter(),
            self.get_friends(),
            self.get_ids(),
            self.get_hot(),
            self.get_content_rules(),
            tracer=self.get_tracer(),
        )
        if self.config.before_send_url:  # the embedder's hook (services/before_send.py)
            from hubbub.services.before_send import BeforeSend

            messages.before_send = BeforeSend(self.config, self.get_egress())
        return messages

    # -- integrations (docs/integrations.md) ----------------------------------------------------------
    @cached
    def get_egress(self) -> Egress:
        """Outgoing HTTP to user-chosen URLs, kept off private networks (services/egress.py)."""
        from hubbub.services.egress import Egress

        return Egress(self.config.webhook_allow_networks)

    @cached
    def get_bots(self) -> BotService:
        from hubbub.services.bots import BotService

        return BotService(self.config, self.get_storage(), self.get_routing(), self.get_limiter())

    @cached
    def get_incoming_hooks(self) -> IncomingWebhooks:
        from hubbub.services.webhooks import IncomingWebhooks

        return IncomingWebhooks(self.get_storage(), self.get_messages(), self.get_bots())

    @cached
    def get_outgoing_hooks(self) -> OutgoingWebhooks:
        from hubbub.services.webhooks import OutgoingWebhooks

        return OutgoingWebhooks(self.get_storage(), self.get_messages(), self.get_bots())

    @cached
    def get_dispatcher(self) -> Dispatcher:
        """Delivers outgoing webhooks; started on nodes that serve the API (each webhook by one of them)."""
        from hubbub.services.webhooks import Dispatcher

        admin = self.get_admin()

        async def notify(user_id: int, text: str) -> None:
            await admin.notice(text, user_id, quiet=True)

        dispatcher = Dispatcher(self.config, self.get_storage(), self.get_egress(), notify)
        # It wakes on work: a message this node stored, a webhook created or enabled here (its class doc).
        self.get_messages().on_stored.append(dispatcher.stored)
        self.get_groups().on_notice.append(dispatcher.noticed)
        self.get_outgoing_hooks().on_change.append(dispatcher.hooks_changed)
        return dispatcher

    @cached
    def get_oidc(self) -> OidcService:
        from hubbub.services.oidc import OidcService

        return OidcService(self.config, self.get_storage(), self.get_auth())

    @cached
    def get_actions(self) -> ActionService:
        return ActionService(
            self.config,
            self.get_storage(),
            self.get_routing(),
            self.get_messages(),
            self.get_ids(),
            self.get_hot(),
            self.get_content_rules(),
        )

    @cached
    def get_closing(self) -> AccountClosing:
        return AccountClosing(
            self.get_storage(),
            self.get_routing(),
            self.get_groups(),
            self.get_friends(),
            self.get_passwords(),
        )

    @cached
    def get_retention(self) -> RetentionService:
        return RetentionService(self.config, self.get_storage(), self.get_hot(), self.get_media())

    @cached
    def get_exports(self) -> ExportService:
        return ExportService(self.config, self.get_storage(), self.get_blobs(), self.get_ids())

    @cached
    def get_search(self) -> SearchService:
        return SearchService(self.config, self.get_storage(), self.get_limiter())

    @cached
    def get_indexer(self) -> SearchIndexer:
        """Keeps the search index behind the messages (services/search.py); never on the send path. It
        yields to this node's sends: it catches up at full speed only while the batcher is idle."""
        batcher = self.get_messages().batcher
        return SearchIndexer(self.config, self.get_storage(), activity=lambda: batcher.batches)

    @cached
    def get_calls(self) -> CallService:
        return CallService(
            self.config,
            self.get_call_store(),
            self.get_routing(),
            self.get_storage(),
            self.get_friends(),
            self.get_messages(),
            self.get_ids(),
            self.get_limiter(),
        )

    @cached
    def get_joins(self) -> JoinService:
        return JoinService(self.get_storage(), self.get_groups())

    @cached
    def get_reports(self) -> ReportService:
        return ReportService(self.get_storage(), self.get_limiter())

    @cached
    def get_presence(self) -> PresenceService:
        return PresenceService(
            self.get_storage(), self.get_registry(), self.get_routing(), self.config.max_sessions_per_user
        )

    @cached
    def get_social(self) -> SocialService:
        """Issue 15: blocks, remarks, privacy, chat preferences, sessions, live profiles and read counts. It
        hears every stored read (``MessageService.on_read``)."""
        social = SocialService(
            self.config,
            self.get_storage(),
            self.get_routing(),
            self.get_registry(),
            self.get_friends(),
            self.get_groups(),
            self.get_hot_policy().group_is_hot,
        )
        self.get_messages().on_read.append(social.on_read)
        return social

    @cached
    def get_canaries(self) -> Canaries:
        return Canaries(self.config, self.get_storage())

    @cached
    def get_admin(self) -> AdminService:
        return AdminService(
            self.config,
            self.get_storage(),
            self.get_routing(),
            self.get_cluster(),
            self.get_groups(),
            self.get_words(),
            self.get_ids(),
            self.get_passwords(),
            self.get_messages(),
            self.get_closing(),
            self.get_canaries(),
        )

    @cached
    def get_attention(self) -> Attention:
        """Which terminals are in the background, for Web Push: in Redis for a cluster, else in-process."""
        if self.config.redis:
            from hubbub.engines.attention.redis import RedisAttention

            return RedisAttention(self.get_redis(), self.get_redis_keys())
        from hubbub.engines.attention.memory import MemoryAttention

        return MemoryAttention()

    @cached
    def get_webpush(self) -> WebPushService:
        """Web Push (services/webpush): its VAPID key is made on first use, like the token secret."""
        from pathlib import Path

        from hubbub.services.webpush import WebPushService
        from hubbub.services.webpush.keys import VapidKeys, load_or_create
        from hubbub.services.webpush.senders import FcmSender, PushSender, WebPushSender

        c = self.config
        keys = VapidKeys(load_or_create(c.vapid_private_key, Path(c.data_dir)), c.vapid_subject)
        senders: dict[str, PushSender] = {"webpush": WebPushSender(keys)}
        if c.fcm_project:
            senders["fcm"] = FcmSender(c.fcm_url, c.fcm_project, c.fcm_access_token)
        service = WebPushService(
            c, self.get_storage(), self.get_registry(), self.get_attention(), keys, senders, self.node_id
        )
        messages = self.get_messages()
        messages.on_stored.append(service.stored)
        messages.on_read.append(service.read)
        self.get_calls().on_invite = service.call_invited
        return service

    @cached
    def get_services(self) -> Services:
        return Services(
            config=self.config,
            storage=self.get_storage(),
            routing=self.get_routing(),
            registry=self.get_registry(),
            cluster=self.get_cluster(),
            auth=self.get_auth(),
            accounts=self.get_accounts(),
            friends=self.get_friends(),
            messages=self.get_messages(),
            groups=self.get_groups(),
            hot=self.get_hot(),
            presence=self.get_presence(),
            ids=self.get_ids(),
            media=self.get_media(),
            words=self.get_words(),
            admin=self.get_admin(),
            retention=self.get_retention(),
            exports=self.get_exports(),
            closing=self.get_closing(),
            search=self.get_search(),
            calls=self.get_calls(),
            tracer=self.get_tracer(),
            access=self.get_auth().access,
            joins=self.get_joins(),
            reports=self.get_reports(),
            canaries=self.get_canaries(),
            social=self.get_social(),
            webpush=self.get_webpush(),
            bots=self.get_bots(),
            incoming_hooks=self.get_incoming_hooks(),
            outgoing_hooks=self.get_outgoing_hooks(),
            oidc=self.get_oidc(),
            actions=self.get_actions(),
        )

    # -- the node's edges ---------------------------------------------------------------------------
    @cached
    def get_hub(self) -> Hub:
        """This node's connections: routing's local sink, and where node broadcasts arrive (hot-group news to
        the hot groups, cache drops to friendships: services/broadcasts.py). Every serving node has one; only a
        node that serves WebSocket starts its sweeper."""
        from hubbub.gateway.hub import Hub
        from hubbub.services.broadcasts import NodeBroadcasts

        assert not self.tool, "a tool has no connections"
        hub = Hub(self.config.heartbeat_s, self.config.auth_timeout_s)
        hub.on_broadcast = NodeBroadcasts(self.get_hot().heard_broadcast, self.get_friends().forget).heard
        hub.tracer = self.get_tracer()
        if self.serves_websocket:
            from hubbub.gateway.signals import HubAudience

            self.get_hot().signaller.attach(HubAudience(hub))
        return hub

    @cached
    def get_metrics(self) -> NodeMetrics:
        from hubbub.engines.storage.sql import SqlStorage
        from hubbub.metrics import BatcherStats, HotStats, HubStats, NodeMetrics
        from hubbub.services.search import SearchStats

        metrics = NodeMetrics()
        hot = self.get_hot()
        providers: list[StatsProvider] = [
            HubStats(self.get_hub(), self.get_canaries()),
            BatcherStats(self.get_messages().batcher),
            HotStats(hot, hot.signaller),
            self.get_cluster(),  # the queue's lag, in a cluster
            SearchStats(self.get_search(), self.get_indexer()),
        ]
        if isinstance(storage := self.get_storage(), SqlStorage):
            providers.append(
                Reading("db_queries", "counter", "SQL statements executed.", lambda: storage.queries)
            )
        if (link := self.get_redis_link()) is not None:
            providers.append(link)
        push = self.get_webpush()
        providers += [
            Reading(
                "push_sent", "counter", "Pushes a push service accepted (Web Push, FCM).", lambda: push.sent
            ),
            Reading(
                "push_failed",
                "counter",
                "Pushes refused or unanswered (retried or dropped).",
                lambda: push.failed,
            ),
        ]
        metrics.provide(*providers)
        self.get_messages().batcher.on_batch = metrics.batch_size.observe
        self.get_messages().batcher.unmetered = self.get_canaries()
        return metrics

    @cached
    def get_gateway(self) -> Gateway | None:
        """The WebSocket endpoint, on a node whose role serves it."""
        if not self.serves_websocket:
            return None
        from hubbub.gateway.server import Gateway

        return Gateway(self.get_services(), self.get_hub(), self.get_metrics())

    @cached
    def get_app(self) -> web.Application:
        from hubbub.platform.app import build_app

        return build_app(self.get_services(), self.get_gateway(), self.get_metrics())

    # -- lifecycle ----------------------------------------------------------------------------------
    async def close(self) -> None:
        """Close what was built, dependents before what they depend on. Safe after a partial start."""
        if self.built("dispatcher"):
            await self.get_dispatcher().close()
        if self.built("oidc"):
            await self.get_oidc().close()
        if self.built("retention"):
            await self.get_retention().close()
        if self.built("exports"):
            await self.get_exports().close()
        if self.built("indexer"):
            await self.get_indexer().close()
        if self.built("social"):
            await self.get_social().close()
        if self.built("calls"):
            await self.get_calls().close()  # and its store
        if self.built("words"):
            await self.get_words().close()
        if self.built("canaries"):
            await self.get_canaries().close()
        if self.built("webpush"):
            await self.get_webpush().close()
        if self.built("messages"):
            await self.get_messages().close()
        if self.built("tracer"):
            await self.get_tracer().close()
        if self.built("media"):
            await self.get_media().close()
        if self.built("egress"):
            await self.get_egress().close()
        if self.built("passwords"):
            self.get_passwords().close()  # the password hashing threads
        if self.built("blobs"):
            await self.get_blobs().close()
        if self.built("routing"):
            await self.get_routing().close()
        if self.built("registry"):
            await self.get_registry().close()
        if self.built("cluster"):
            await self.get_cluster().close()
        if self.built("hot"):
            self.get_hot().close()  # pending signals: their terminals are gone
        if self.built("hot_state"):
            await self.get_hot_state().close()
        if self.built("call_store") and not self.built("calls"):
            await self.get_call_store().close()
        if self.built("limiter"):
            close_limiter = getattr(self.get_limiter(), "close", None)  # the Redis one holds a pool
            if close_limiter is not None:
                await close_limiter()
        if self.built("attention"):
            await self.get_attention().close()
        if self.built("redis"):
            await self.get_redis().aclose()
        if self.built("storage"):
            await self.get_storage().close()
