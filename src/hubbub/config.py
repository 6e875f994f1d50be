"""Typed configuration. Every option has a default that works, so ``hubbub serve`` needs no config at all.

Sources, later wins: defaults, environment variables ``HUBBUB_<FIELD>`` (upper case), CLI flags.

A setting that cannot work is a ``ConfigError``, raised here (``load`` and ``Config.validate``) and nowhere
deeper: components trust a validated config. The CLI prints the error and exits with status 2 (issue 13.8).
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any, Literal

import msgspec

#: Values ``log_level`` and ``word_filter`` accept (hubbub/logs.py, services/words.py).
LOG_LEVELS = ("debug", "info", "warning", "error")
WORD_FILTER_MODES = ("replace", "reject", "off")


class ConfigError(ValueError):
    """A setting that cannot work, with a message that names it and says what would."""


class Config(msgspec.Struct, kw_only=True):
    #: Address to listen on; ``0.0.0.0`` (or ``::``) listens on every interface.
    host: str = "127.0.0.1"
    #: Port of HTTP, WebSocket and the web client.
    port: int = 8080
    #: Holds the SQLite database, the generated JWT secret and (later) uploaded files.
    data_dir: str = "./hubbub-data"
    #: SQLAlchemy URL; empty means SQLite in ``data_dir``. ``postgresql://...`` is accepted as is.
    database: str = ""
    #: PostgreSQL URL of a streaming replica of ``database``: message pages (pull, history) are read there,
    #: falling back to the primary for a page the replica has not caught up with (read-your-writes kept);
    #: empty means every read goes to ``database``.
    database_replica: str = ""
    #: Redis URL for cluster routing and presence; empty means in-process (single node).
    #: ``redis+cluster://host:port`` (any node) uses a Redis Cluster.
    redis: str = ""
    #: Unique per cluster node; empty means derived from host and port.
    node_id: str = ""
    #: 0-1023, unique per cluster node, part of every message id; -1 means leased from Redis in a cluster
    #: (or derived from the node id on a single node).
    node_number: int = -1
    #: HS256 secret for access tokens; empty means generated once into ``data_dir/jwt-secret``. A cluster
    #: must give every node the same one.
    jwt_secret: str = ""
    #: How long an access token is accepted (clients refresh it before).
    access_token_ttl_s: int = 15 * 60
    #: How long a refresh token stays usable: a session unused for this long ends.
    refresh_token_ttl_s: int = 30 * 24 * 3600
    #: Clients ping at this interval (seconds); a connection silent for 2.5x it is closed.
    heartbeat_s: int = 25
    #: A connection must authenticate within this many seconds.
    auth_timeout_s: float = 10.0
    #: Bytes a connection may have queued for sending before it is cut off as a slow consumer.
    max_send_buffer: int = 1024 * 1024
    #: Largest WebSocket frame a client may send (a bigger one closes the connection with 1009).
    max_frame_bytes: int = 64 * 1024
    #: Largest JSON request body (a bigger one is refused with 413 ``too_large``).
    max_body_bytes: int = 1024 * 1024
    #: Longest text (and caption) of a message, in characters (Unicode code points).
    max_text_chars: int = 4000
    #: The sender may recall a message for this long (seconds).
    recall_window_s: int = 120
    # -- message actions (docs/protocol.md, "Message actions") ---------------------------------------
    #: The sender may edit a text message for this long (seconds); 0: no time limit.
    edit_window_s: int = 24 * 3600
    #: Most distinct emoji reacted to one message.
    max_reactions: int = 20
    #: Comma-separated emoji allowed as reactions; empty: any single emoji.
    reaction_emoji: str = ""
    #: Most messages one ``forward`` carries, and most conversations it goes to.
    forward_max_items: int = 20
    forward_max_targets: int = 10
    #: Typing indicators in groups of at most this many members (never in push-pull groups); 0: none.
    group_typing_max_members: int = 20
    #: At most one typing push per user and conversation in this many milliseconds; the rest are dropped.
    typing_interval_ms: int = 2000
    #: Private messages only between friends.
    private_requires_friendship: bool = True
    #: Sends per user: a burst of ``send_burst`` then ``send_rate`` per second.
    send_rate: float = 50.0
    send_burst: int = 200
    #: Reads per user (REST GETs, WebSocket sync/pull/history/receipts, one bucket): a burst of
    #: ``read_burst`` then ``read_rate`` per second.
    read_rate: float = 50.0
    read_burst: int = 500
    #: Message searches per user: a burst of ``search_burst`` then ``search_rate`` per second (a search
    #: costs far more than a read; docs/protocol.md, "Search").
    search_rate: float = 2.0
    search_burst: int = 20
    #: Run the search indexer on this node (one node of a cluster indexes at a time, whichever holds the
    #: lock; the others stand by). Off: messages are stored but not findable until a node indexes them.
    search_indexer: bool = True
    #: Seconds between indexer passes when it has caught up: the most a new message waits to be findable.
    search_index_interval_s: float = 0.5
    #: Messages indexed per pass (one short transaction each).
    search_index_batch: int = 500
    #: A query whose terms are all shorter than 3 characters (no trigram) reads at most this many of the
    #: newest visible messages per request, and says where it stopped.
    search_short_scan: int = 20_000
    #: Login attempts per username from one client address: burst, then per minute. Keyed on the pair so
    #: strangers guessing elsewhere never lock the owner out (the per-address limit is login_ip_*).
    login_burst: int = 10
    login_per_minute: float = 10.0
    #: Password changes per session: burst, then per hour; per user, twice these (a user has a few devices).
    password_change_burst: int = 5
    password_change_per_hour: float = 10.0
    #: Most members a (normal) group may have.
    group_member_limit: int = 5000
    #: Most members of a group an owner/admin marked hot (push-pull keeps its cost bounded).
    hot_group_member_limit: int = 100_000
    #: Groups with at least this many members are delivered push-pull (hot); admins can mark any group hot.
    hot_group_threshold: int = 500
    #: Hot-group signals to one member are coalesced over this window (milliseconds).
    hot_signal_window_ms: int = 200
    #: Recent messages kept per hot group for pulls, before falling back to the database.
    hot_cache_messages: int = 2000
    #: Most groups a user may create per hour.
    group_create_per_hour: int = 20
    #: Largest batch of messages stored in one transaction.
    max_batch: int = 512
    #: argon2 password hashing: passes and memory per hash; lower only for tests.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    #: Threads hashing passwords at once (their own pool: the CPU and memory argon2 may take at a time).
    password_hash_workers: int = 2
    # -- operations (docs/operations.md) -----------------------------------------------------------
    #: On SIGTERM a node drains (refuses new connections, closes its clients with 4503, flushes pending
    #: sends) and exits within this many seconds, whatever is still in flight.
    drain_timeout_s: float = 10.0
    #: Seconds between this node's load reports (connections, users) to the cluster's node list.
    load_report_s: float = 5.0
    #: The first account registered on a fresh server becomes an admin. Turn off on a server whose sign-up
    #: page is public before you registered; create admins with ``hubbub admin create-user --admin``.
    first_user_admin: bool = True
    #: Who may sign up while no admin has chosen in the console (the console's choice is stored in the
    #: database and wins on every node): ``open``, ``invite`` (an invite code is needed) or ``closed`` (admins
    #: create accounts). A fresh server always lets its first account register (docs/operations.md).
    registration: Literal["open", "invite", "closed"] = "open"
    #: The sensitive-word filter on text messages: "replace" each listed word with ***, "reject" the
    #: message with ``content_rejected``, or "off". The word list is edited with ``hubbub admin words``.
    word_filter: str = "replace"
    #: Seconds between a node's checks that the word list changed (edits on the node itself apply at once).
    word_refresh_s: float = 2.0
    # -- uploads (docs/media.md) -------------------------------------------------------------------
    #: Largest upload per kind, in bytes.
    max_image_bytes: int = 20 * 1024 * 1024
    max_file_bytes: int = 100 * 1024 * 1024
    max_voice_bytes: int = 10 * 1024 * 1024
    max_video_bytes: int = 100 * 1024 * 1024
    #: Bytes of uploads a user may hold (originals; thumbnails are free).
    upload_quota_bytes: int = 1024 * 1024 * 1024
    #: Images with more pixels than this are refused as decompression bombs.
    max_image_pixels: int = 50_000_000
    #: Above 12 megapixels, an image may have at most this many pixels per byte of its file (photos have a
    #: few; a 160 KB PNG of 7000x7000 has 300 and is refused as a decompression bomb).
    max_image_pixels_per_byte: float = 64.0
    #: Threads that decode images, each holding up to ``max_image_pixels`` x 4 bytes: they bound the memory
    #: and CPU uploads of images can take at once (the rest wait their turn).
    image_decode_threads: int = 2
    #: Threads that read audio and video containers. Image decoding, media probing and password hashing
    #: each have their own threads, so hostile media cannot delay logins.
    media_probe_threads: int = 1
    #: Longest side of a thumbnail, in pixels.
    thumb_px: int = 256
    #: The blob collector runs this often (seconds; 0 disables it) and spares anything younger than the grace.
    blob_gc_interval_s: float = 3600.0
    blob_gc_grace_s: float = 24 * 3600.0
    #: Local blob directory; empty means ``data_dir/blobs``. Ignored when ``s3_bucket`` is set.
    blob_dir: str = ""
    #: S3-compatible blob store for clusters: set the bucket (and endpoint for non-AWS stores) to use it.
    s3_endpoint: str = ""
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    s3_prefix: str = ""
    s3_access_key: str = ""
    #: The S3 secret key; never logged or printed.
    s3_secret_key: str = ""
    # -- data lifecycle (docs/operations.md, "Retention", "Exports", "Account deletion") ------------------
    #: Server default retention of messages, in days; 0 keeps them for ever. A conversation's own policy
    #: (set by an admin, or by a group's owner) overrides it.
    retention_days: int = 0
    #: The purge job runs this often (seconds; 0 disables it): removes expired messages, then the uploads and
    #: blobs no message references any more (after ``blob_gc_grace_s``).
    retention_interval_s: float = 3600.0
    #: Group owners may set their group's retention (admins always may, for any conversation).
    group_retention_by_owner: bool = True
    #: How long a finished export can be downloaded (seconds) before its archive is deleted.
    export_ttl_s: int = 7 * 24 * 3600
    #: An export still building after this many seconds is taken as failed (its node died) and can be asked
    #: for again.
    export_stale_s: float = 3600.0
    # -- abuse limits (docs/security.md) -------------------------------------------------------------
    #: Login attempts per client IP, whatever the username: a burst, then per minute.
    login_ip_burst: int = 50
    login_ip_per_minute: float = 30.0
    #: Registrations per client IP: a burst, then per hour.
    register_ip_burst: int = 20
    register_ip_per_hour: float = 60.0
    #: Uploads per user and per client IP: a burst, then per minute.
    upload_burst: int = 30
    upload_per_minute: float = 60.0
    upload_ip_burst: int = 100
    upload_ip_per_minute: float = 300.0
    #: Comma-separated networks (CIDR) exempt from the per-IP limits, e.g. ``127.0.0.0/8`` for load tests.
    ip_limit_exempt: str = ""
    #: Comma-separated proxy addresses whose ``X-Forwarded-For`` names the client (the nginx of deploy/);
    #: empty means the socket's peer address is the client.
    trusted_proxies: str = ""
    #: Live WebSocket connections one client IP may hold on a node (refused with HTTP 429 before the upgrade).
    max_ws_per_ip: int = 256
    #: Authenticated WebSocket connections one user may hold on a node (more: close 4530). Above
    #: ``max_sessions_per_user`` so that a user's own devices are evicted (4410), not refused.
    max_ws_per_user: int = 12
    #: Seconds a new HTTP connection has to send its first request, and an idle keep-alive connection is
    #: kept: a client trickling its headers (slow loris) is cut off after this.
    http_keepalive_s: float = 15.0
    #: Seconds a JSON request body may take to arrive completely (408 ``timeout`` after).
    http_body_timeout_s: float = 15.0
    #: A spent refresh token presented again within this many seconds, while its successor is unused, gets
    #: that same successor again (a response lost on the way); later, or once the successor is used, the
    #: reuse revokes the session. 0 disables the grace.
    refresh_reuse_grace_s: float = 10.0
    # Who may scrape ``GET /metrics`` (docs/operations.md, "Metrics"): with neither setting, the main port
    # serves it to loopback clients only (not through a proxy), so a scraper on the node's host works out of
    # the box and nobody else sees it.
    #: ``host:port`` of a listener of its own that serves ``/metrics`` (and the main port then does not).
    metrics_listen: str = ""
    #: When set, ``/metrics`` needs ``Authorization: Bearer <token>`` wherever it is served; never logged.
    metrics_token: str = ""
    # -- calls (docs/operations.md, "Calls and TURN") -------------------------------------------------
    #: Comma-separated STUN URLs given to clients, e.g. ``stun:turn.example.org:3478``; empty: none.
    call_stun_urls: str = ""
    #: Comma-separated TURN URLs, e.g. ``turn:turn.example.org:3478?transport=udp,turns:turn.example.org:5349``;
    #: given to clients only with ``call_turn_secret`` set.
    call_turn_urls: str = ""
    #: coturn's ``static-auth-secret`` (``use-auth-secret``): per-user TURN credentials are derived from it
    #: (TURN REST API). Never logged or sent to clients.
    call_turn_secret: str = ""
    #: How long a TURN credential is valid (seconds); a call in progress keeps its allocation past it.
    call_turn_ttl_s: int = 6 * 3600
    #: Tell clients to send all call media through TURN (``iceTransportPolicy: "relay"``): neither side learns
    #: the other's IP address, at the cost of relay bandwidth. Needs TURN configured.
    call_force_relay: bool = False
    #: A call not answered within this many seconds is missed.
    call_ring_timeout_s: float = 45.0
    #: A call whose party's node stopped renewing it for this long (the node died) ends; its users are no
    #: longer busy. Nodes renew every third of it.
    call_lease_s: float = 30.0
    #: A device whose connection drops during an answered call may reconnect (to any node) and resume the
    #: call within this many seconds (the media goes on meanwhile); after that, or with 0, the call ends.
    call_reconnect_s: float = 10.0
    #: Call invites per user: a burst, then per minute.
    call_invite_burst: int = 10
    call_invite_per_minute: float = 20.0
    # -- Web Push (docs/operations.md, "Web Push") ---------------------------------------------------
    #: Push notifications to devices whose app is closed or in the background (Web Push, and FCM if set).
    push_enabled: bool = True
    #: The VAPID private key (PEM, or the raw key in base64url); empty means generated once into
    #: ``data_dir/vapid-private.pem``. A cluster must give every node the same one (subscriptions are bound to
    #: its public key). Never logged.
    vapid_private_key: str = ""
    #: Who runs this server, for the push services (RFC 8292 ``sub``): a ``mailto:`` or ``https:`` URL.
    vapid_subject: str = "mailto:admin@hubbub.invalid"
    #: At most one push per conversation per device in this many seconds; a burst becomes one notification
    #: with a count.
    push_window_s: float = 5.0
    #: How long a push service keeps a push for an unreachable device (seconds, the ``TTL`` header).
    push_ttl_s: int = 24 * 3600
    #: Tries per push on 429, 5xx or no answer, waiting ``push_retry_base_s`` x 2^try (or ``Retry-After``).
    push_max_attempts: int = 8
    push_retry_base_s: float = 2.0
    #: Seconds between a node's safety-net looks at the push queue. Its own pushes, clears, retries and
    #: coalescing windows wake its worker when they are due; the look is for rows left by a node that died.
    push_poll_s: float = 10.0
    #: Accept ``http://`` push endpoints (a push service on this host, for tests); never in production.
    push_allow_http: bool = False
    #: FCM HTTP v1 for native apps: the API base URL, the Firebase project and an OAuth access token (kept
    #: fresh by whoever deploys it). Off unless the project is set. Tested against a local fake only.
    fcm_url: str = "https://fcm.googleapis.com"
    fcm_project: str = ""
    fcm_access_token: str = ""
    #: ``debug``, ``info``, ``warning`` or ``error``.
    log_level: str = "info"
    #: Which roles this process plays: "all" (default), "gateway" (WebSocket connections only) or
    #: "platform" (HTTP API only). Split roles need the cluster engines (Redis) to reach each other.
    role: Literal["all", "gateway", "platform"] = "all"
    #: Share of messages whose path is traced for admins (``GET /api/v1/admin/trace``), 0 to 1; 0 turns
    #: tracing off. Chosen from the message id, so every node traces the same ones. Tracing every message costs
    #: about 7 µs of CPU per message (some 10% of the 1:1 path); a tenth, about 1 µs (docs/benchmarks.md).
    trace_sample: float = 0.1
    #: How long a message's trace is kept (seconds).
    trace_ttl_s: int = 86400
    #: On a single node (no Redis), most messages whose traces are kept in memory (the oldest go first).
    trace_memory_messages: int = 100_000
    #: Seconds between reloads of the accounts marked canary, which product metrics leave out (a node that
    #: marks one itself knows at once).
    canary_refresh_s: float = 30.0
    #: The retention purge deletes canary accounts' messages older than this many hours (0: never).
    canary_retention_hours: float = 24.0
    # -- social (issue 15; docs/protocol.md, "Sessions, profiles, blocking and chat preferences") --
    #: Live connections (devices and tabs) one user may hold across the cluster; one more evicts the idlest
    #: (close 4410).
    max_sessions_per_user: int = 10
    #: A profile change is pushed to fellow members of groups up to this size (and not push-pull).
    profile_push_group_limit: int = 500
    #: Group read counts are pushed to senders at most once per this window per group (ms).
    receipt_push_window_ms: int = 1000
    #: Groups above this many members get no read-count pushes (clients ask with ``receipts``).
    receipt_push_max_members: int = 100
    #: Longest voice note whose duration the server takes from the client (seconds).
    voice_max_seconds: int = 600
    #: Chats one user may pin.
    max_pinned_chats: int = 5
    # -- integrations (docs/integrations.md): bots, webhooks, the before-send hook, OpenID Connect --------
    #: Requests one bot token may make: a burst, then per minute (every route and WebSocket sign-in counts).
    bot_request_burst: int = 60
    bot_requests_per_minute: float = 600.0
    #: Bots one user may own (admins are not limited).
    bots_per_user: int = 10
    #: Comma-separated networks (CIDR) webhook deliveries and the before-send hook may reach although
    #: private, loopback or link-local; by default only public addresses are reached.
    webhook_allow_networks: str = ""
    #: Seconds one outgoing webhook delivery may take before it counts as failed.
    webhook_timeout_s: float = 5.0
    #: Seconds a signed delivery stays acceptable to a receiver (the replay window documented for them).
    webhook_replay_window_s: int = 300
    #: Consecutive failed deliveries after which a webhook is disabled (its owner gets a notice).
    webhook_max_failures: int = 8
    #: First retry delay of a failed delivery (seconds); it doubles with each failure, up to 10 minutes.
    webhook_retry_base_s: float = 1.0
    #: Seconds between a node's sweeps of every webhook, the safety net for messages other nodes stored (or a
    #: gateway-only node) and webhooks created elsewhere; a message this node stores, a webhook created here
    #: and a due retry wake it at once. The webhook's lease keeps each to one node.
    webhook_poll_s: float = 5.0
    #: Optional URL called before each user message is stored: it may allow, reject or rewrite it.
    before_send_url: str = ""
    #: Seconds the before-send hook may take; past it the send follows ``before_send_fail_open``.
    before_send_timeout_s: float = 2.0
    #: When the hook fails or times out: true lets the message through, false refuses it (``unavailable``).
    before_send_fail_open: bool = True
    #: OpenID Connect provider (one): its issuer URL (discovery is read from
    #: ``<issuer>/.well-known/openid-configuration``); empty turns single sign-on off.
    oidc_issuer: str = ""
    #: The client registered at the provider; the secret may be empty for a public client (PKCE alone).
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    #: The name on the login page's button.
    oidc_name: str = "Single sign-on"
    #: This server's public base URL (``https://chat.example.org``), for the redirect URI; empty: the
    #: request's own scheme and host.
    public_url: str = ""
    #: Create an account on a first sign-in with an unknown subject (still only when registration is open).
    oidc_auto_create: bool = True

    @property
    def database_url(self) -> str:
        if not self.database:
            return f"sqlite+aiosqlite:///{Path(self.data_dir).resolve() / 'hubbub.db'}"
        if self.database.startswith("postgresql://") or self.database.startswith("postgres://"):
            return "postgresql+asyncpg://" + self.database.split("://", 1)[1]
        return self.database

    @property
    def database_replica_url(self) -> str:
        """``database_replica`` as SQLAlchemy's asyncpg URL ("" without one)."""
        if self.database_replica.startswith(("postgresql://", "postgres://")):
            return "postgresql+asyncpg://" + self.database_replica.split("://", 1)[1]
        return self.database_replica

    @property
    def effective_node_id(self) -> str:
        return self.node_id or f"{self.host}:{self.port}"

    def validate(self) -> Config:
        """Raise ``ConfigError`` for a setting that cannot work; the config itself when all can."""
        if self.log_level.lower() not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}")
        if self.word_filter not in WORD_FILTER_MODES:
            raise ConfigError(
                f"word_filter must be one of {', '.join(WORD_FILTER_MODES)}, not {self.word_filter!r}"
            )
        if self.metrics_listen:
            _host, _, port = self.metrics_listen.rpartition(":")
            if not port.isdigit():
                raise ConfigError(f"metrics_listen must be host:port, not {self.metrics_listen!r}")
        if not -1 <= self.node_number <= 1023:
            raise ConfigError(f"node_number must be -1 (leased) or 0-1023, not {self.node_number}")
        if self.max_sessions_per_user < 1:
            raise ConfigError(f"max_sessions_per_user must be at least 1, not {self.max_sessions_per_user}")
        if self.receipt_push_window_ms < 50:
            raise ConfigError(f"receipt_push_window_ms must be at least 50, not {self.receipt_push_window_ms}")
        if self.database_replica and not (
            self.database_url.startswith("postgresql") and self.database_replica_url.startswith("postgresql")
        ):
            raise ConfigError(
                "database_replica is a PostgreSQL streaming replica of a PostgreSQL database: set both "
                "HUBBUB_DATABASE and HUBBUB_DATABASE_REPLICA to postgresql://... URLs"
            )
        return self

    def validate_node(self) -> Config:
        """``validate``, plus what only a serving node needs (a tool such as ``hubbub admin`` issues no
        tokens, so it needs no shared secret)."""
        self.validate()
        if self.redis and not self.jwt_secret:
            raise ConfigError(
                "a cluster node needs the cluster's shared token secret: set HUBBUB_JWT_SECRET (the same on "
                "every node), or each node would reject the others' tokens"
            )
        return self

    def ensure_data_dir(self) -> Path:
        path = Path(self.data_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def secret(self) -> str:
        """The JWT secret: configured, or generated once into the data dir (never hard-coded)."""
        if self.jwt_secret:
            return self.jwt_secret
        path = self.ensure_data_dir() / "jwt-secret"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
        return path.read_text().strip()


def load(overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Config:
    """The config from the environment and ``overrides``, validated (``ConfigError`` if it cannot work)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(Config):
        raw = env.get(f"HUBBUB_{field.name.upper()}")
        if raw is not None:
            values[field.name] = raw
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        config = msgspec.convert(values, Config, strict=False)
    except msgspec.ValidationError as exc:  # "Expected `int`, got `str` - at `$.port`"
        found = re.search(r"\$\.(\w+)", str(exc))
        where = f"{found[1]} (HUBBUB_{found[1].upper()}): " if found else ""
        raise ConfigError(f"{where}{exc}") from exc
    return config.validate()
