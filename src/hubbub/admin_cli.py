"""``hubbub admin ...``: administer a server from its host, no running node needed (docs/operations.md).

Each command builds the admin service (services/admin.py) against the configured database and, in a cluster,
Redis — the same settings as ``hubbub serve`` (``HUBBUB_DATABASE``, ``HUBBUB_REDIS``, ``HUBBUB_DATA_DIR`` or
the options of ``hubbub admin``) — does its work and exits. With Redis, what must reach live connections
(a ban closing sockets, a notice's push) goes through the nodes' queues, as it would from a node. On a single
node without Redis the CLI cannot reach the running process: a ban still revokes every session (the user's
next request or reconnect fails), but an open socket stays until then — use ``PUT /api/v1/admin/users/{id}/ban``
there to close it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from hubbub import config as config_mod

if TYPE_CHECKING:
    from hubbub.engines.storage.base import UserRecord
    from hubbub.services.admin import AdminService

T = TypeVar("T")

admin_app = typer.Typer(
    help="Administer a Hubbub server: users, bans, groups, notices, the word list, nodes, config.",
    no_args_is_help=True,
)
words_app = typer.Typer(help="The sensitive-word list.", no_args_is_help=True)
admin_app.add_typer(words_app, name="words")
console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


@admin_app.callback()
def options(
    ctx: typer.Context,
    data_dir: Annotated[
        str | None, typer.Option("--data-dir", help="A single node's data directory [env HUBBUB_DATA_DIR]")
    ] = None,
    database: Annotated[str | None, typer.Option(help="PostgreSQL URL [env HUBBUB_DATABASE]")] = None,
    redis: Annotated[str | None, typer.Option(help="Redis URL of a cluster [env HUBBUB_REDIS]")] = None,
) -> None:
    """Settings come from the same environment as ``hubbub serve``; these options override them."""
    ctx.obj = {"data_dir": data_dir, "database": database, "redis": redis}


def _config(ctx: typer.Context) -> config_mod.Config:
    overrides = dict(ctx.obj) if isinstance(ctx.obj, dict) else {}
    # The CLI is nobody's node: its own id keeps it out of the way of the nodes' registry entries.
    cfg = config_mod.load({**overrides, "node_id": f"admin-cli-{os.getpid()}"})
    if not cfg.jwt_secret:
        # The CLI issues no tokens; a throwaway secret keeps it from writing one into a data directory.
        cfg.jwt_secret = secrets.token_urlsafe(32)
    return cfg


# -- plumbing -------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _admin(cfg: config_mod.Config) -> AsyncIterator[AdminService]:
    from hubbub.engines.hotgroups.memory import MemoryHotState
    from hubbub.engines.ratelimit.memory import MemoryRateLimiter
    from hubbub.migrations import runner
    from hubbub.node import build_blobs, build_broker, build_storage
    from hubbub.services.container import Services

    storage = build_storage(cfg)
    broker = build_broker(cfg)
    try:
        async with storage.engine.connect() as conn:  # type: ignore[attr-defined]
            have = await conn.run_sync(runner.current)
        if have != runner.head():
            raise _Fail(
                f"the database schema is at {have or 'nothing'}, this Hubbub needs {runner.head()}: "
                "run `hubbub migrate` first"
            )
        services = Services.build(
            cfg,
            storage,
            broker,
            MemoryRateLimiter(),
            MemoryHotState(cfg.hot_cache_messages),
            build_blobs(cfg),
        )
        number = await broker.lease_node_number()
        if number is not None:
            services.ids.set_number(number)
        yield services.admin
    finally:
        await broker.close()
        await storage.close()


class _Fail(Exception):
    pass


def _run(ctx: typer.Context, work: Callable[[AdminService], Awaitable[T]]) -> T:
    from hubbub.core.errors import HubbubError

    cfg = _config(ctx)

    async def go() -> T:
        async with _admin(cfg) as admin:
            return await work(admin)

    try:
        if not cfg.database and not os.path.exists(os.path.join(cfg.data_dir, "hubbub.db")):
            raise _Fail(
                f"no database: set HUBBUB_DATABASE, or --data-dir to a node's data directory ({cfg.data_dir})"
            )
        return asyncio.run(go())
    except HubbubError as exc:
        errors.print(f"[red]error[/red] {exc.code.value}: {exc.message}")
        raise typer.Exit(1) from exc
    except _Fail as exc:
        errors.print(f"[red]error[/red] {exc}")
        raise typer.Exit(1) from exc


def _print_users(records: list[UserRecord], as_json: bool) -> None:
    import msgspec

    if as_json:
        console.print_json(msgspec.json.encode(records).decode())
        return
    table = Table("id", "username", "nickname", "admin", "banned")
    for r in records:
        table.add_row(
            str(r.user.id),
            r.user.username,
            r.user.nickname,
            "yes" if r.is_admin else "",
            "[red]banned[/red]" if r.banned else "",
        )
    console.print(table)


# -- migrations -----------------------------------------------------------------------------------
async def run_migrations(cfg: config_mod.Config) -> None:
    """Apply the pending migrations one by one under a progress bar, in one transaction: all or nothing."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from hubbub.engines.storage.sql import SqlStorage
    from hubbub.migrations import runner
    from hubbub.node import build_storage

    storage = build_storage(cfg)
    assert isinstance(storage, SqlStorage)
    try:
        async with storage.writer.begin() as conn:
            todo = await conn.run_sync(runner.pending)
            if not todo:
                console.print(f"database is at the newest schema ({runner.head()})")
                return
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console) as progress:
                task = progress.add_task("migrating", total=len(todo))

                def apply(sync_conn: Any) -> None:
                    for revision, doc in todo:
                        progress.update(task, description=f"{revision} {doc[:60]}")
                        runner.upgrade(sync_conn, revision)
                        progress.advance(task)

                await conn.run_sync(apply)
        console.print(f"database is at the newest schema ({runner.head()}): applied {len(todo)} migration(s)")
    finally:
        await storage.close()


@admin_app.command("migrate")
def migrate(ctx: typer.Context) -> None:
    """Bring the database schema to the newest version (the same as `hubbub migrate`)."""
    asyncio.run(run_migrations(_config(ctx)))


# -- users ----------------------------------------------------------------------------------------
@admin_app.command("create-user")
def create_user(
    ctx: typer.Context,
    username: str,
    password: Annotated[
        str | None,
        typer.Option(help="The password; asked for (hidden, twice) when not given", show_default=False),
    ] = None,
    nickname: Annotated[str | None, typer.Option(help="Display name (default: the username)")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user a server administrator")] = False,
) -> None:
    """Create a user (an admin with --admin)."""
    if password is None:  # asked here, not by the option: an option with a prompt is listed as "required"
        password = str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    record = _run(ctx, lambda a: a.create_user(username, password, nickname, admin=admin))
    console.print(
        f"created user {record.user.id} ({record.user.username}){' as an admin' if record.is_admin else ''}"
    )


@admin_app.command("users")
def users(
    ctx: typer.Context,
    query: Annotated[str, typer.Option("--query", "-q", help="Username or nickname prefix")] = "",
    after: Annotated[int, typer.Option(help="List from the user id after this one")] = 0,
    limit: Annotated[int, typer.Option(max=200)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List users with their admin and ban flags."""
    _print_users(_run(ctx, lambda a: a.users(query, after, limit)), as_json)


@admin_app.command("ban")
def ban(ctx: typer.Context, user: Annotated[str, typer.Argument(help="User id or username")]) -> None:
    """Ban a user: sessions revoked, connections closed on every node (4403), no more logins."""

    async def work(a: AdminService) -> UserRecord:
        return await a.ban((await a.find_user(user)).user.id)

    record = _run(ctx, work)
    console.print(f"banned user {record.user.id} ({record.user.username})")


@admin_app.command("unban")
def unban(ctx: typer.Context, user: Annotated[str, typer.Argument(help="User id or username")]) -> None:
    """Lift a ban (the user logs in again)."""

    async def work(a: AdminService) -> UserRecord:
        return await a.unban((await a.find_user(user)).user.id)

    record = _run(ctx, work)
    console.print(f"unbanned user {record.user.id} ({record.user.username})")


@admin_app.command("grant-admin")
def grant_admin(ctx: typer.Context, user: Annotated[str, typer.Argument(help="User id or username")]) -> None:
    """Make a user a server administrator."""

    async def work(a: AdminService) -> UserRecord:
        return await a.set_admin((await a.find_user(user)).user.id, True)

    record = _run(ctx, work)
    console.print(f"user {record.user.id} ({record.user.username}) is an admin")


@admin_app.command("revoke-admin")
def revoke_admin(
    ctx: typer.Context, user: Annotated[str, typer.Argument(help="User id or username")]
) -> None:
    """Take a user's administrator rights away."""

    async def work(a: AdminService) -> UserRecord:
        return await a.set_admin((await a.find_user(user)).user.id, False)

    record = _run(ctx, work)
    console.print(f"user {record.user.id} ({record.user.username}) is no longer an admin")


# -- groups ---------------------------------------------------------------------------------------
@admin_app.command("dismiss-group")
def dismiss_group(ctx: typer.Context, group_id: int) -> None:
    """Dismiss a group: history stays readable, nothing else is allowed."""
    group = _run(ctx, lambda a: a.dismiss_group(group_id))
    console.print(f"group {group.id} ({group.name}) dismissed")


@admin_app.command("freeze-group")
def freeze_group(
    ctx: typer.Context,
    group_id: int,
    unfreeze: Annotated[bool, typer.Option("--unfreeze", help="Make it writable again")] = False,
) -> None:
    """Freeze a group (read-only: sends are refused with group_frozen), or --unfreeze it."""
    group = _run(ctx, lambda a: a.freeze_group(group_id, not unfreeze))
    console.print(f"group {group.id} ({group.name}) is {'frozen' if group.frozen else 'writable'}")


# -- notices --------------------------------------------------------------------------------------
@admin_app.command("notice")
def notice(
    ctx: typer.Context,
    text: str,
    user: Annotated[str | None, typer.Option(help="One user (id or username); default: everyone")] = None,
) -> None:
    """Send a notice: stored as a `notice` message from the server account, pushed to those online."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    async def work(a: AdminService) -> int:
        if user is not None:
            return await a.notice(text, (await a.find_user(user)).user.id)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as progress:
            task = progress.add_task("sending to everyone", total=None)
            return await a.notice(
                text, None, lambda n: progress.update(task, description=f"sent to {n} users")
            )

    sent = _run(ctx, work)
    console.print(f"notice sent to {sent} user(s)")


# -- words ----------------------------------------------------------------------------------------
@words_app.command("list")
def words_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show the word list."""
    found = _run(ctx, lambda a: a.word_list())
    if as_json:
        console.print_json(json.dumps(found))
    else:
        for word in found:
            console.print(word)
        errors.print(f"{len(found)} word(s)")


@words_app.command("add")
def words_add(ctx: typer.Context, words: list[str]) -> None:
    """Add words (case-insensitive); running nodes apply them within seconds."""
    found = _run(ctx, lambda a: a.change_words(add=words))
    console.print(f"{len(found)} word(s) in the list")


@words_app.command("remove")
def words_remove(ctx: typer.Context, words: list[str]) -> None:
    """Remove words."""
    found = _run(ctx, lambda a: a.change_words(remove=words))
    console.print(f"{len(found)} word(s) in the list")


# -- cluster --------------------------------------------------------------------------------------
@admin_app.command("nodes")
def nodes(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The cluster's nodes: liveness and load, as each reported it (needs Redis)."""
    import msgspec

    from hubbub.core.clock import now_ms

    found = _run(ctx, lambda a: a.nodes())
    if as_json:
        console.print_json(msgspec.json.encode(found).decode())
        return
    if not found:
        errors.print(
            "no nodes reported (a single node without Redis reports only to itself: GET /api/v1/admin/nodes)"
        )
        return
    table = Table("node", "state", "connections", "users", "up", "reported")
    now = now_ms()
    for n in found:
        state = (
            "[red]dead[/red]"
            if not n.alive
            else ("[yellow]draining[/yellow]" if n.draining else "[green]up[/green]")
        )
        up = f"{(now - n.started_at) // 1000} s" if n.started_at else "?"
        seen = f"{(now - n.reported_at) / 1000:.0f} s ago" if n.reported_at else "never"
        table.add_row(n.node, state, str(n.connections), str(n.users), up, seen)
    console.print(table)


@admin_app.command("config")
def show_config(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The effective configuration (defaults, environment, options), secrets masked."""
    from hubbub.services.admin import masked_config

    values = masked_config(config_mod.load(dict(ctx.obj) if isinstance(ctx.obj, dict) else {}))
    if as_json:
        console.print_json(json.dumps(values))
        return
    table = Table("setting", "value")
    for name, value in values.items():
        table.add_row(name, str(value))
    console.print(table)


# -- access control (issue 20; docs/operations.md, "Admin console") --------------------------------
@admin_app.command("registration")
def registration(
    ctx: typer.Context,
    mode: Annotated[
        str | None, typer.Argument(help="open, invite or closed; omitted: show the current one")
    ] = None,
) -> None:
    """Show or set who may sign up (stored in the database: every node applies it at once)."""
    from hubbub.services.access import AccessService

    async def work(a: AdminService) -> str:
        access = AccessService(a.config, a.storage)
        if mode is not None:
            _, changed = await access.change_settings({"registration": mode})
            if changed:
                await a.audit(None, "settings.change", detail=changed)
        return (await access.settings()).registration

    console.print(f"registration: {_run(ctx, work)}")


@admin_app.command("audit")
def audit_export(
    ctx: typer.Context,
    action: Annotated[str, typer.Option(help="only this action, e.g. user.ban")] = "",
    target: Annotated[str, typer.Option(help="only this target, e.g. user:12")] = "",
) -> None:
    """Write the audit log as JSON lines (oldest first) to standard output, a thousand entries at a time."""
    import sys

    import msgspec

    from hubbub.engines.storage.base_access import AuditQuery

    async def work(a: AdminService) -> int:
        written = after = 0
        while page := await a.audit_log(AuditQuery(action=action, target=target), after=after, limit=1000):
            sys.stdout.write("".join(msgspec.json.encode(e).decode() + "\n" for e in page))
            written += len(page)
            after = page[-1].id
        return written

    errors.print(f"{_run(ctx, work)} entries")
