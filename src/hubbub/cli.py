"""The ``hubbub`` command: ``serve`` runs a node, ``migrate`` brings a database to the newest schema,
``admin ...`` administers a server (hubbub/admin_cli.py)."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Annotated, Any, NoReturn

import typer

from hubbub import config as config_mod
from hubbub import logs
from hubbub.admin_cli import admin_app, run_migrations

app = typer.Typer(help="Hubbub: a self-hosted chat server.", no_args_is_help=True, add_completion=False)
app.add_typer(admin_app, name="admin")

#: Exit status for a configuration that cannot work (a usage error, as for a bad option).
CONFIG_EXIT = 2

#: Where every setting is listed (name, type, default, unit, meaning).
SETTINGS_DOC = "docs/operations.md, Settings"


def _version(value: bool) -> None:
    if value:
        import hubbub

        typer.echo(hubbub.__version__)
        raise typer.Exit()


@app.callback()
def main(
    _version_flag: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Hubbub: a self-hosted chat server."""


def _run(coro: Any) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


def _setting(name: str, about: str, *flags: str, default: bool = True) -> Any:
    """An option of ``serve`` whose --help shows its environment variable and default (the Config's)."""
    shown = getattr(config_mod.Config(), name) if default else False
    return typer.Option(
        *flags,
        help=about,
        envvar=f"HUBBUB_{name.upper()}",
        show_envvar=True,
        show_default=str(shown) if shown not in ("", False) else False,
    )


def _port_taken(host: str, port: int) -> bool:
    """Is something already listening there? (The node binds with SO_REUSEADDR too, so this predicts it.)"""
    if port == 0:
        return False
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False  # the node reports a bad address itself
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False


def _port_in_use(cfg: config_mod.Config) -> NoReturn:
    typer.echo(f"hubbub: port {cfg.port} is in use on {cfg.host}, try --port (or HUBBUB_PORT)", err=True)
    raise typer.Exit(1)


def config_failed(exc: config_mod.ConfigError) -> NoReturn:
    """A configuration that cannot work: one clear line and exit status 2, never a traceback."""
    typer.echo(f"hubbub: configuration error: {exc}", err=True)
    raise typer.Exit(CONFIG_EXIT) from exc


def _announce(url: str, role: str) -> None:
    """One plain line for the person who started the server, besides the JSON log (which goes to stderr)."""
    if role == "gateway":
        typer.echo(
            f"Hubbub gateway is running: WebSocket at {url.replace('http', 'ws', 1)}/ws (Ctrl-C stops it)"
        )
    else:
        typer.echo(f"Hubbub is running: open {url} in a browser (Ctrl-C stops it)")


@app.command(epilog=f"Every setting can also be set as HUBBUB_<NAME>; all of them: {SETTINGS_DOC}.")
def serve(
    host: Annotated[str | None, _setting("host", "Address to listen on (0.0.0.0: every interface)")] = None,
    port: Annotated[int | None, _setting("port", "Port to listen on")] = None,
    data_dir: Annotated[
        str | None, _setting("data_dir", "SQLite database, token secret, uploads", "--data-dir")
    ] = None,
    database: Annotated[
        str | None, _setting("database", "PostgreSQL URL for a cluster (default: SQLite in --data-dir)")
    ] = None,
    redis: Annotated[
        str | None, _setting("redis", "Redis URL for a cluster (default: none, a single node)")
    ] = None,
    node_id: Annotated[
        str | None, _setting("node_id", "Unique node name (default: host:port)", "--node-id")
    ] = None,
    log_level: Annotated[
        str | None, _setting("log_level", "debug, info, warning or error", "--log-level")
    ] = None,
    role: Annotated[
        str | None,
        _setting("role", "all, gateway (WebSocket only) or platform (HTTP API only)"),
    ] = None,
) -> None:
    """Run a node with every role (embedded SQLite and in-process routing unless told otherwise)."""
    from hubbub.core.errors import HubbubError
    from hubbub.node import Node

    try:
        cfg = config_mod.load(
            {
                "host": host,
                "port": port,
                "data_dir": data_dir,
                "database": database,
                "redis": redis,
                "node_id": node_id,
                "log_level": log_level,
                "role": role,
            }
        ).validate_node()
    except config_mod.ConfigError as exc:
        config_failed(exc)
    if _port_taken(cfg.host, cfg.port):
        _port_in_use(cfg)
    logs.setup(cfg.log_level, cfg.effective_node_id)
    node = Node(cfg)
    try:
        _run(node.run_forever(on_started=lambda: _announce(node.url, cfg.role)))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:  # taken between the check and the bind
            raise
        _port_in_use(cfg)
    except HubbubError as exc:  # a backend missing at start (Redis not reachable): say so, no traceback
        typer.echo(f"hubbub: cannot start: {exc.message}", err=True)
        raise typer.Exit(1) from exc


@app.command()
def migrate(
    data_dir: Annotated[str | None, typer.Option("--data-dir")] = None,
    database: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Bring the database schema to the newest version (serve also does this on start)."""
    try:
        cfg = config_mod.load({"data_dir": data_dir, "database": database})
    except config_mod.ConfigError as exc:
        config_failed(exc)
    asyncio.run(run_migrations(cfg))


@app.command()
def canary(
    url: Annotated[list[str], typer.Option(help="A node's URL; give every node (--url A --url B)")],
    admin_user: Annotated[
        str, typer.Option(envvar="HUBBUB_CANARY_ADMIN_USER", help="Creates and marks the accounts")
    ],
    admin_password: Annotated[str, typer.Option(envvar="HUBBUB_CANARY_ADMIN_PASSWORD", show_default=False)],
    password: Annotated[
        str, typer.Option(envvar="HUBBUB_CANARY_PASSWORD", help="The canary accounts' password")
    ],
    users: Annotated[int, typer.Option(min=4, help="Canary accounts")] = 4,
    interval: Annotated[float, typer.Option(help="Seconds between rounds (one message per path)")] = 2.0,
    grace: Annotated[float, typer.Option(help="Seconds a message has to arrive before it is checked")] = 10.0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: never)")
    ] = None,
    metrics_port: Annotated[int, typer.Option(help="Port of the canary's own /metrics")] = 9464,
    metrics_host: Annotated[str, typer.Option()] = "127.0.0.1",
) -> None:
    """Prove delivery on a live cluster: synthetic accounts send marked messages on every path and node and
    check each arrives exactly once, in order (docs/operations.md, "Canary"). Exit status 1 on a violation."""
    from hubbub.proof.canary import CanaryOptions, run_canary

    logs.setup("info", "canary")
    options = CanaryOptions(
        url,
        admin_user,
        admin_password,
        password,
        users,
        interval,
        grace,
        duration,
        metrics_host,
        metrics_port,
    )
    raise typer.Exit(1 if asyncio.run(run_canary(options)) else 0)


@app.command()
def version() -> None:
    """Print the version."""
    import hubbub

    typer.echo(hubbub.__version__)
