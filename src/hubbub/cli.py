"""The ``hubbub`` command: ``serve`` runs a node, ``migrate`` brings a database to the newest schema,
``admin ...`` administers a server (hubbub/admin_cli.py)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from hubbub import config as config_mod
from hubbub import logs
from hubbub.admin_cli import admin_app, run_migrations

app = typer.Typer(help="Hubbub: a self-hosted chat server.", no_args_is_help=True, add_completion=False)
app.add_typer(admin_app, name="admin")


def _run(coro: Any) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [env HUBBUB_HOST; default 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port [env HUBBUB_PORT; default 8080]")] = None,
    data_dir: Annotated[
        str | None, typer.Option("--data-dir", help="SQLite database, secret, files [env HUBBUB_DATA_DIR]")
    ] = None,
    database: Annotated[
        str | None, typer.Option(help="PostgreSQL URL for a cluster [env HUBBUB_DATABASE]")
    ] = None,
    redis: Annotated[str | None, typer.Option(help="Redis URL for a cluster [env HUBBUB_REDIS]")] = None,
    node_id: Annotated[
        str | None, typer.Option("--node-id", help="Unique node name [env HUBBUB_NODE_ID]")
    ] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help="debug, info, warning, error")] = None,
    role: Annotated[
        str | None, typer.Option(help="all (default), gateway (WebSocket only) or platform (HTTP API only)")
    ] = None,
) -> None:
    """Run a node with every role (embedded SQLite and in-process routing unless told otherwise)."""
    from hubbub.node import Node

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
    )
    logs.setup(cfg.log_level, cfg.effective_node_id)
    _run(Node(cfg).run_forever())


@app.command()
def migrate(
    data_dir: Annotated[str | None, typer.Option("--data-dir")] = None,
    database: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Bring the database schema to the newest version (serve also does this on start)."""
    cfg = config_mod.load({"data_dir": data_dir, "database": database})
    asyncio.run(run_migrations(cfg))


@app.command()
def version() -> None:
    """Print the version."""
    import hubbub

    typer.echo(hubbub.__version__)
