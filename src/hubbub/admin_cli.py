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
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from hubbub import config as config_mod

if TYPE_CHECKING:
    from hubbub.engines.storage.base import UserRecord
    from hubbub.root import Root
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
    try:
        cfg = config_mod.load({**overrides, "node_id": f"admin-cli-{os.getpid()}"})
    except config_mod.ConfigError as exc:
        errors.print(f"[red]configuration error[/red] {exc}")
        raise typer.Exit(2) from exc
    if not cfg.jwt_secret:
        # The CLI issues no tokens; a throwaway secret keeps it from writing one into a data directory.
        cfg.jwt_secret = secrets.token_urlsafe(32)
    return cfg


# -- plumbing -------------------------------------------------------------------------------------
# A new command: decorate a function with ``@admin_app.command(...)`` (or a sub-app's), do its work in an
# ``async def work(a: AdminService)`` and call ``_run(ctx, work)``: the composition root builds the admin
# service for it (hubbub/root.py), and errors become one red line and exit status 1.
@contextlib.asynccontextmanager
async def _tool_root(cfg: config_mod.Config) -> AsyncIterator[Root]:
    """The composition root in tool mode (nobody's node), on a database at this Hubbub's schema; the
    commands ask it for what they use (``get_admin()``, ``get_retention()``...), so nothing else is built."""
    from hubbub.migrations import runner
    from hubbub.root import Root

    root = Root(cfg, tool=True)
    try:
        have = await root.get_storage().schema_revision()
        if have != runner.head():
            raise _Fail(
                f"the database schema is at {have or 'nothing'}, this Hubbub needs {runner.head()}: "
                "run `hubbub migrate` first"
            )
        number = await root.get_cluster().lease_node_number()
        if number is not None:
            root.get_ids().set_number(number)
        yield root
    finally:
        await root.close()


@contextlib.asynccontextmanager
async def _admin(cfg: config_mod.Config) -> AsyncIterator[AdminService]:
    async with _tool_root(cfg) as root:
        yield root.get_admin()


class _Fail(Exception):
    pass


def _run(ctx: typer.Context, work: Callable[[AdminService], Awaitable[T]]) -> T:
    cfg = _config(ctx)

    async def go() -> T:
        async with _admin(cfg) as admin:
            return await work(admin)

    return _run_on_database(cfg, go)


def _run_on_database(cfg: config_mod.Config, go: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's work against the configured database; its refusals become one red line and exit 1."""
    from hubbub.core.errors import HubbubError

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

    from hubbub.migrations import runner
    from hubbub.root import Root

    root = Root(cfg, tool=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    progress = Progress(*columns, console=console)
    task = progress.add_task("migrating", total=None)
    started = 0

    def pending(todo: list[tuple[str, str]]) -> None:
        if todo:
            progress.update(task, total=len(todo))
            progress.start()

    def step(revision: str, doc: str) -> None:
        nonlocal started
        if started:
            progress.advance(task)  # the previous one is done
        started += 1
        progress.update(task, description=f"{revision} {doc[:60]}")

    try:
        applied = await root.get_storage().migrate(pending, step)
        if applied:
            progress.advance(task)
    finally:
        progress.stop()
        await root.close()
    if not applied:
        console.print(f"database is at the newest schema ({runner.head()})")
    else:
        console.print(f"database is at the newest schema ({runner.head()}): applied {applied} migration(s)")


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


@admin_app.command("canary-purge")
def canary_purge(
    ctx: typer.Context,
    older_than_hours: Annotated[float, typer.Option(help="Keep the canary's messages younger than this")] = 24,
) -> None:
    """Delete the delivery canary's messages (sent by accounts marked canary) older than --older-than-hours;
    run it from cron, as the canary's retention."""
    count = _run(ctx, lambda a: a.purge_canary(int(older_than_hours * 3600)))
    console.print(f"deleted {count} canary message(s)")


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

    try:
        loaded = config_mod.load(dict(ctx.obj) if isinstance(ctx.obj, dict) else {})
    except config_mod.ConfigError as exc:
        errors.print(f"[red]configuration error[/red] {exc}")
        raise typer.Exit(2) from exc
    values = masked_config(loaded)
    if as_json:
        console.print_json(json.dumps(values))
        return
    table = Table("setting", "value")
    for name, value in values.items():
        table.add_row(name, str(value))
    console.print(table)


# -- data lifecycle (docs/operations.md: "Backup and restore", "From one machine to a cluster") ------------
def _progress_bar() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
    )


def _tasks(progress: Any) -> Callable[[str, int, int], None]:
    tasks: dict[str, Any] = {}

    def update(what: str, done: int, total: int) -> None:
        if what not in tasks:
            tasks[what] = progress.add_task(what, total=total)
        progress.update(tasks[what], completed=done, total=total)

    return update


def _blob_dir(cfg: config_mod.Config) -> str:
    return cfg.blob_dir or os.path.join(cfg.data_dir, "blobs")


def _tool(work: Callable[[], T]) -> T:
    from hubbub.tools import ToolError

    try:
        return work()
    except ToolError as exc:
        errors.print(f"[red]error[/red] {exc}")
        raise typer.Exit(1) from exc


@admin_app.command("backup")
def backup(
    ctx: typer.Context,
    dest: Annotated[str, typer.Argument(help="A new (or empty) directory to write the backup into")],
    pg_dump: Annotated[
        str, typer.Option("--pg-dump", help="pg_dump to run (PostgreSQL installs)")
    ] = "pg_dump",
) -> None:
    """Back up the database and the blob directory, consistent with each other; safe while the node runs."""
    from pathlib import Path

    from hubbub.tools import backup as b

    cfg = _config(ctx)
    with _progress_bar() as progress:
        if cfg.database:
            blobs = None if cfg.s3_bucket else Path(_blob_dir(cfg))
            report = _tool(
                lambda: b.backup_postgres(cfg.database_url, blobs, Path(dest), pg_dump, _tasks(progress))
            )
        else:
            report = _tool(
                lambda: b.backup_sqlite(
                    Path(cfg.data_dir), Path(_blob_dir(cfg)), Path(dest), _tasks(progress)
                )
            )
    console.print(
        f"backed up the {report.engine} database ({report.db_bytes} bytes, snapshot at {report.snapshot_at}) and "
        f"{report.blobs} blob(s) ({report.blob_bytes} bytes) into {report.path} in {report.seconds} s"
    )


@admin_app.command("restore")
def restore(
    ctx: typer.Context,
    src: Annotated[str, typer.Argument(help="A directory written by `hubbub admin backup`")],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Restore over a data directory (or database) that is not empty; the old data directory is kept aside",
        ),
    ] = False,
    pg_restore: Annotated[
        str, typer.Option("--pg-restore", help="pg_restore to run (PostgreSQL backups)")
    ] = "pg_restore",
) -> None:
    """Restore a backup into the configured data directory (or PostgreSQL database). Stop the node first."""
    from pathlib import Path

    from hubbub.tools import backup as b

    cfg = _config(ctx)
    manifest = _tool(lambda: b.read_manifest(Path(src)))
    with _progress_bar() as progress:
        if manifest.get("engine") == "postgresql":
            if not cfg.database:
                errors.print(
                    "[red]error[/red] a PostgreSQL backup restores into --database (or HUBBUB_DATABASE)"
                )
                raise typer.Exit(1)
            blobs = None if cfg.s3_bucket else Path(_blob_dir(cfg))
            report = _tool(
                lambda: b.restore_postgres(
                    Path(src), cfg.database_url, blobs, force, pg_restore, _tasks(progress)
                )
            )
        else:
            report = _tool(lambda: b.restore_sqlite(Path(src), Path(cfg.data_dir), force, _tasks(progress)))
    aside = f"; the previous data directory is kept at {report.kept_aside}" if report.kept_aside else ""
    console.print(
        f"restored the {report.engine} backup ({report.blobs} blob(s)) into {report.target} in {report.seconds} s{aside}"
    )


@admin_app.command("migrate-to-postgres")
def migrate_to_postgres(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="The PostgreSQL URL to copy into (an empty database)")],
    s3: Annotated[
        bool, typer.Option("--s3", help="Copy the blobs into the S3 bucket of the HUBBUB_S3_* settings")
    ] = False,
    batch: Annotated[int, typer.Option(min=100, max=50_000, help="Rows per transaction")] = 5000,
) -> None:
    """Copy this single node's SQLite database and blobs into PostgreSQL (and S3), resumable, then verify.
    Stop the node first; run again to resume an interrupted copy."""
    from pathlib import Path

    from hubbub.engines.blobs.local import LocalBlobStore
    from hubbub.root import Root
    from hubbub.tools import ToolError
    from hubbub.tools.migrate_pg import MigrationReport, migrate

    cfg = _config(ctx)
    db = Path(cfg.data_dir) / "hubbub.db"
    if cfg.database or not db.is_file():
        errors.print(
            f"[red]error[/red] the source is a single node's SQLite database: no {db} (give --data-dir)"
        )
        raise typer.Exit(1)
    if s3 and not cfg.s3_bucket:
        errors.print("[red]error[/red] --s3 needs HUBBUB_S3_BUCKET (and its endpoint and keys)")
        raise typer.Exit(1)
    target_url = config_mod.Config(database=to).database_url

    async def go(progress: Any) -> MigrationReport:
        source = LocalBlobStore(_blob_dir(cfg))
        target = Root(cfg, tool=True).get_blobs() if s3 else None
        if target is not None:
            await target.start()
        try:
            return await migrate(cfg.database_url, target_url, source, target, _tasks(progress), batch)
        finally:
            if target is not None:
                await target.close()

    with _progress_bar() as progress:
        try:
            report = asyncio.run(go(progress))
        except ToolError as exc:
            errors.print(f"[red]error[/red] {exc}")
            errors.print("nothing is lost: fix the cause and run the same command again to resume")
            raise typer.Exit(1) from exc
    console.print(
        f"copied {sum(report.rows.values())} rows{' (resumed)' if report.resumed else ''} and {report.blobs} blob(s) in {report.seconds} s; verified:"
    )
    for check in report.checks:
        console.print(f"  [green]ok[/green] {check}")
    console.print(
        "point every node at the new database (HUBBUB_DATABASE) and start them (docs/operations.md)"
    )


def _run_services(ctx: typer.Context, work: Callable[[Root], Awaitable[T]]) -> T:
    """Like ``_run``, for the lifecycle commands: ``work`` gets the tool's root and builds what it uses."""
    cfg = _config(ctx)

    async def go() -> T:
        async with _tool_root(cfg) as root:
            await root.get_blobs().start()  # purges and exports read and delete blobs
            return await work(root)

    return _run_on_database(cfg, go)


@admin_app.command("retention")
def retention(
    ctx: typer.Context,
    conv: Annotated[str, typer.Argument(help="Conversation id (p:1:2, g:7)")],
    days: Annotated[int | None, typer.Option(help="Keep messages this many days (0: for ever)")] = None,
    default: Annotated[
        bool, typer.Option("--default", help="Drop its own policy: the server default applies")
    ] = False,
) -> None:
    """Show a conversation's retention, or set it with --days N (0 keeps for ever) or --default."""

    async def work(s: Root) -> Any:
        admin = await s.get_admin().server_user()
        if days is None and not default:
            return await s.get_retention()._view(conv, can_edit=True)
        return await s.get_retention().set_by_admin(admin, conv, None if default else days)

    view = _run_services(ctx, work)
    what = "for ever" if view.days == 0 else f"{view.days} days"
    own = "the server default" if view.own is None else "its own policy"
    console.print(f"{view.conv}: messages kept {what} ({own}); purged floor {view.floor}")


@admin_app.command("purge")
def purge(ctx: typer.Context) -> None:
    """Run the retention purge now: expired messages, then unreferenced uploads and blobs."""
    report = _run_services(ctx, lambda s: s.get_retention().purge_once())
    console.print(
        f"purged {report.messages} message(s) in {report.conversations} conversation(s); "
        f"{report.uploads} upload(s) and {report.blobs} blob(s) removed"
    )


@admin_app.command("delete-user")
def delete_user(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="User id or username")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Close a user's account: anonymised, sessions ended, groups left; their messages stay as "Deleted user"."""
    if not yes and not typer.confirm(f"Close the account of {user}? This cannot be undone"):
        raise typer.Exit(1)

    async def work(s: Root) -> int:
        found = await s.get_admin().find_user(user)
        await s.get_closing().close(found.user.id)
        return int(found.user.id)

    closed = _run_services(ctx, work)
    console.print(f"closed the account of user {closed}")


@admin_app.command("export-conversation")
def export_conversation(
    ctx: typer.Context,
    conv: Annotated[str, typer.Argument(help="Conversation id (p:1:2, g:7)")],
    out: Annotated[str, typer.Argument(help="The ZIP file to write")],
) -> None:
    """Export a whole conversation (messages, members, files) for compliance, into a ZIP file."""
    from pathlib import Path

    if Path(out).exists():
        errors.print(f"[red]error[/red] {out} exists: give a new file name")
        raise typer.Exit(1)

    async def work(s: Root) -> int:
        admin = await s.get_admin().server_user()
        job = await s.get_exports().request_conversation_export(admin, conv)
        task = s.get_exports()._jobs.get(job.id)
        if task is not None:
            await task
        done = await s.get_storage().export_job(job.id)
        if done is None or done.status != "ready":
            raise _Fail(f"the export failed: {done.error if done else 'gone'}")
        size = 0
        f = await asyncio.to_thread(Path(out).open, "xb")
        try:
            async for chunk in s.get_exports().blobs.get(f"export{job.id}.zip"):
                await asyncio.to_thread(f.write, chunk)
                size += len(chunk)
        finally:
            f.close()
        return size

    size = _run_services(ctx, work)
    console.print(f"wrote {out} ({size} bytes)")


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
