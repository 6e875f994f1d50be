"""The services of one node, built together by the composition root (``hubbub.node``)."""

from __future__ import annotations

from dataclasses import dataclass

from hubbub.config import Config
from hubbub.core.ids import MessageIds
from hubbub.engines.blobs.base import BlobStore
from hubbub.engines.broker.base import Broker
from hubbub.engines.calls.base import CallStore
from hubbub.engines.hotgroups.base import HotState
from hubbub.engines.ratelimit.base import RateLimiter
from hubbub.engines.storage.base import Storage
from hubbub.proof.trace import Tracer, build_tracer
from hubbub.services import content
from hubbub.services.access import AccessService
from hubbub.services.accounts import AccountService
from hubbub.services.admin import AdminService
from hubbub.services.auth import AuthService
from hubbub.services.calls import CallService
from hubbub.services.closing import AccountClosing
from hubbub.services.export import ExportService
from hubbub.services.friends import FriendService
from hubbub.services.groups import GroupService
from hubbub.services.hot import HotGroups
from hubbub.services.joins import JoinService
from hubbub.services.media import MediaService
from hubbub.services.messages import MessageService
from hubbub.services.passwords import Passwords
from hubbub.services.presence import PresenceService
from hubbub.services.reports import ReportService
from hubbub.services.retention import RetentionService
from hubbub.services.search import SearchService
from hubbub.services.words import WordFilter


@dataclass(frozen=True)
class Services:
    config: Config
    storage: Storage
    broker: Broker
    auth: AuthService
    accounts: AccountService
    friends: FriendService
    messages: MessageService
    groups: GroupService
    hot: HotGroups
    presence: PresenceService
    ids: MessageIds
    media: MediaService
    words: WordFilter
    admin: AdminService
    # The data lifecycle (docs/operations.md): retention and its purge job, exports, closing accounts.
    retention: RetentionService
    exports: ExportService
    closing: AccountClosing
    search: SearchService
    calls: CallService
    tracer: Tracer
    #: Issue 20: registration modes and invites, join links and requests, reports.
    access: AccessService
    joins: JoinService
    reports: ReportService

    @classmethod
    def build(
        cls,
        config: Config,
        storage: Storage,
        broker: Broker,
        limiter: RateLimiter,
        hot_state: HotState,
        blobs: BlobStore | None = None,
        call_store: CallStore | None = None,
    ) -> Services:
        friends = FriendService(config, storage, broker, limiter)
        ids = MessageIds(config.effective_node_id)
        hot = HotGroups(config, storage, broker, hot_state)
        if blobs is None:
            from hubbub.engines.blobs.local import LocalBlobStore

            blobs = LocalBlobStore(config.blob_dir or f"{config.data_dir}/blobs")
        media = MediaService(config, storage, blobs)
        words = WordFilter(config, storage)
        rules = content.ContentRules(config, media, words)
        groups = GroupService(config, storage, broker, limiter, friends, ids, hot, media)
        passwords = Passwords(config)  # one hasher, and one bounded pool, for accounts and admins
        auth = AuthService(config, storage, broker, limiter, passwords)
        tracer = build_tracer(config)
        messages = MessageService(config, storage, broker, limiter, friends, ids, hot, rules, tracer=tracer)
        if call_store is None:
            from hubbub.engines.calls.memory import MemoryCallStore

            call_store = MemoryCallStore()
        closing = AccountClosing(storage, broker, groups, passwords)
        return cls(
            config=config,
            storage=storage,
            broker=broker,
            auth=auth,
            accounts=AccountService(storage, media),
            friends=friends,
            messages=messages,
            groups=groups,
            hot=hot,
            ids=ids,
            presence=PresenceService(storage, broker),
            media=media,
            words=words,
            admin=AdminService(config, storage, broker, groups, words, ids, passwords, messages, closing),
            retention=RetentionService(config, storage, hot, media),
            exports=ExportService(config, storage, blobs, ids),
            closing=closing,
            search=SearchService(config, storage, limiter),
            calls=CallService(config, call_store, broker, storage, friends, messages, ids, limiter),
            tracer=tracer,
            access=auth.access,
            joins=JoinService(storage, groups),
            reports=ReportService(storage, limiter),
        )
