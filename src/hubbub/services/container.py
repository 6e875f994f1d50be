"""``Services``: a read-only bag of one node's services, for the routes and the gateway to reach them by name.

It builds nothing: the composition root (``hubbub/root.py``) builds every service with exactly what it uses
and fills the bag. Services never take the bag themselves (a service that could reach everything would hide
what it depends on).
"""

from __future__ import annotations

from dataclasses import dataclass

from hubbub.config import Config
from hubbub.core.ids import MessageIds
from hubbub.engines.cluster.base import Cluster
from hubbub.engines.registry.base import Registry
from hubbub.engines.routing.base import Routing
from hubbub.engines.storage.base import Storage
from hubbub.proof.trace import Tracer
from hubbub.services.access import AccessService
from hubbub.services.accounts import AccountService
from hubbub.services.actions import ActionService
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
from hubbub.services.presence import PresenceService
from hubbub.services.reports import ReportService
from hubbub.services.retention import RetentionService
from hubbub.services.search import SearchService
from hubbub.services.words import WordFilter


@dataclass(frozen=True)
class Services:
    config: Config
    storage: Storage
    routing: Routing
    registry: Registry
    cluster: Cluster
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
    #: Issue 14: edit, reactions, pins, forward, delete for me, typing in groups.
    actions: ActionService
