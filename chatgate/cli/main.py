"""The ``chatgate`` command: options in, one call into the library, a table or a line out."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from chatgate.cli.output import LazyConsole, new_table
from chatgate.cli.usage import usage_app
from chatgate.core.accounts import UserInfo
from chatgate.core.errors import ChatgateError
from chatgate.logs import LogFormat
from chatgate.services import Services
from chatgate.settings import Settings

T = TypeVar("T")

app = typer.Typer(
    name="chatgate",
    help="A self-hosted ChatGPT service with an OpenAI-compatible gateway.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(usage_app, name="usage")

console = LazyConsole()
err_console = LazyConsole(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-C", help="TOML settings file.", exists=True, dir_okay=False),
]


class State:
    config: Path | None = None


state = State()


def _show_version(value: bool) -> None:
    if value:
        from chatgate import __version__

        print(f"chatgate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    config: ConfigOption = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    state.config = config


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    try:
        return Settings.load(config or state.config, **overrides)
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        err_console.print(f"[red]invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from None


def with_services(fn: Callable[[Services], Awaitable[T]], *, migrate: bool | None = None) -> T:
    """Run one admin action against the database, mapping errors to a message and exit code."""

    async def runner() -> T:
        services = await Services.open(load_settings(), migrate=migrate, start_models=False)
        try:
            return await fn(services)
        finally:
            await services.close()

    try:
        return asyncio.run(runner())
    except ChatgateError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


def when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M") if stamp else "-"


def setup_logging(level: str, log_format: LogFormat = "text") -> None:
    """The server's log on standard error, as text or JSON lines (see ``chatgate.logs``)."""
    from chatgate import logs

    logs.setup(level, log_format)


# ---- serve ----------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port.")] = None,
    grpc_port: Annotated[int | None, typer.Option(help="gRPC port (0 turns it off).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes serving the same ports (needs Redis).")
    ] = None,
    config: ConfigOption = None,
    log_format: Annotated[
        str | None, typer.Option(help="Log lines as 'text' or 'json' (one object a line).")
    ] = None,
    access_log: Annotated[
        bool | None, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = None,
    ssl_certfile: Annotated[
        Path | None, typer.Option(help="TLS certificate (PEM): serve HTTPS.", dir_okay=False)
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option(help="Private key of --ssl-certfile (PEM).", dir_okay=False)
    ] = None,
) -> None:
    """Run the service."""
    from chatgate.cli.serving import serve as run_server

    given = {
        "log_format": log_format,
        "access_log": access_log,
        "ssl_certfile": ssl_certfile,
        "ssl_keyfile": ssl_keyfile,
        "workers": workers,
    }
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if grpc_port is not None:
        overrides["grpc_port"] = grpc_port
    settings = load_settings(config, **overrides)
    setup_logging(settings.log_level, settings.log_format)
    settings.secret()
    run_server(settings)


@app.command("demo-upstream")
def demo_upstream(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8001,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    delay: Annotated[float, typer.Option(help="Seconds between streamed chunks.")] = 0.0,
    api_key: Annotated[
        str | None, typer.Option(help="Require this Bearer key.", envvar="DEMO_UPSTREAM_KEY")
    ] = None,
) -> None:
    """Run the built-in demo model as a stand-alone OpenAI-compatible server."""
    import uvicorn

    from chatgate.demo_upstream import DemoUpstream

    console.print(f"demo model served at http://{host}:{port}/v1")
    uvicorn.run(
        DemoUpstream(delay=delay, api_key=api_key),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


# ---- db ---------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema up to date."""

    async def action(services: Services) -> None:
        return None

    with_services(action, migrate=True)
    console.print("database is up to date")


# ---- users --------------------------------------------------------------------------------------


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    return None


@users_app.command("create")
def users_create(
    name: str,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator.")] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a user (asks for a password on a terminal; without one, the user uses API keys)."""
    password = _read_password(password_stdin)
    if admin and not password:
        err_console.print(
            "[red]error:[/red] an administrator needs a password: run this on a terminal, "
            "or pass it with --password-stdin"
        )
        raise typer.Exit(2)
    role = "admin" if admin else "user"
    info = with_services(lambda s: s.accounts.create_user(name, password, role=role))
    console.print(f"created {info.role} {info.name} (id {info.id})")


@users_app.command("list")
def users_list() -> None:
    """List users with the limits that apply to them (their own, or which default)."""

    async def action(s: Services) -> list[tuple[UserInfo, dict[str, str]]]:
        return [(u, _limits_shown(s, u)) for u in await s.accounts.list_users()]

    users = with_services(action)
    table = new_table(
        "id",
        "name",
        "role",
        "disabled",
        "daily requests",
        "daily tokens",
        "rpm",
        "streams",
        "created",
    )
    for u, shown in users:
        table.add_row(
            str(u.id),
            u.name,
            u.role,
            "yes" if u.disabled else "no",
            *shown.values(),
            when(u.created_at),
        )
    console.print(table)


def _given_limits(
    daily_requests: int | None, daily_tokens: int | None, rpm: int | None, max_streams: int | None
) -> dict[str, int | None]:
    """The limits named on the command line; an omitted one is left as it is."""
    given = {
        "daily_requests": daily_requests,
        "daily_tokens": daily_tokens,
        "rpm": rpm,
        "max_streams": max_streams,
    }
    return {k: v for k, v in given.items() if v is not None}


@users_app.command("set-quota")
def users_set_quota(
    name: str,
    daily_requests: Annotated[int | None, typer.Option(help="Requests per day (-1: none).")] = None,
    daily_tokens: Annotated[int | None, typer.Option(help="Tokens per day (-1: none).")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute (-1: none).")] = None,
    max_streams: Annotated[int | None, typer.Option(help="Concurrent streams (-1: none).")] = None,
) -> None:
    """Set a user's limits; a value of -1 removes that limit, an omitted one is unchanged."""
    values = _given_limits(daily_requests, daily_tokens, rpm, max_streams)

    async def action(s: Services) -> dict[str, str]:
        return _limits_shown(s, await s.accounts.set_quota(name, by=None, **values))

    shown = with_services(action)
    console.print(f"quota of {name}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))


def _limits_shown(services: Services, user: UserInfo) -> dict[str, str]:
    """A user's limits as they apply: a number or "unlimited", and where it comes from when
    it is not their own ("10 (default)", "unlimited (admin)")."""
    effective = services.accounts.limits_for(user.role, user.quota)
    source = " (admin)" if user.role == "admin" else " (default)"
    shown = {}
    for field, own in user.quota.items():
        value = getattr(effective, field)
        text = "unlimited" if value is None else str(value)
        shown[field] = text if own is not None else text + source
    return shown


def _quota_text(quota: dict[str, int | None], unset: str) -> str:
    return ", ".join(
        f"{k}={'unlimited' if v is not None and v < 0 else unset if v is None else v}"
        for k, v in quota.items()
    )


@users_app.command("set-password")
def users_set_password(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Set a user's password; every login of theirs ends at once."""
    password = _read_password(password_stdin)
    if not password:
        err_console.print("[red]error:[/red] no password given (use --password-stdin)")
        raise typer.Exit(2)
    info = with_services(lambda s: s.accounts.set_password(name, password))
    console.print(f"password of {info.name} changed; their logins have ended")


@users_app.command("set-role")
def users_set_role(
    name: str, role: Annotated[str, typer.Argument(help="'admin' or 'user'.")]
) -> None:
    """Make a user an administrator or a normal user (a demotion ends their logins)."""
    info = with_services(lambda s: s.accounts.update_user(name, role=role))
    console.print(f"{info.name} is now {info.role}")


@users_app.command("disable")
def users_disable(name: str) -> None:
    """Disable a user: their keys and logins stop working at once."""
    info = with_services(lambda s: s.accounts.update_user(name, disabled=True))
    console.print(f"disabled {info.name}")


@users_app.command("enable")
def users_enable(name: str) -> None:
    """Enable a disabled user again (they log in anew; their keys work again)."""
    info = with_services(lambda s: s.accounts.update_user(name, disabled=False))
    console.print(f"enabled {info.name}")


@users_app.command("import")
def users_import(
    file: Annotated[
        Path, typer.Argument(help="CSV of username,password rows.", exists=True, dir_okay=False)
    ],
) -> None:
    """Create users from a CSV file of username,password rows (a header row is optional); says
    what became of each row, and exits with 1 when a row was refused."""
    from chatgate.core.user_import import UserImport

    data = file.read_bytes()
    report = with_services(lambda s: UserImport(s.db, s.accounts, s.clock.now).run(data))
    table = new_table("line", "username", "result", "reason")
    for row in report.rows:
        table.add_row(str(row.line), row.username or "", row.result, row.reason or "")
    console.print(table)
    refused = report.count("refused")
    console.print(
        f"{report.count('created')} created, {report.count('skipped')} skipped, {refused} refused"
    )
    if refused:
        raise typer.Exit(1)


@users_app.command("logout")
def users_logout(name: str) -> None:
    """End every login of a user; their API keys keep working."""

    async def action(s: Services) -> None:
        await s.accounts.end_all_sessions((await s.accounts.get_user(name)).id)

    with_services(action)
    console.print(f"every login of {name} has ended")


# ---- keys ---------------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option("--user", help="Owner of the key.")],
    name: Annotated[str | None, typer.Option("--name", help="A label for the key.")] = None,
    expires_days: Annotated[float | None, typer.Option(help="Expire after N days.")] = None,
) -> None:
    """Create an API key and print it once; it is not stored and cannot be shown again."""
    plain, info = with_services(
        lambda s: s.accounts.create_key(user, label=name, expires_days=expires_days)
    )
    err_console.print(f"key {info.id} for {info.username} (shown once, keep it safe):")
    print(plain)


@keys_app.command("list")
def keys_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's keys.")] = None,
) -> None:
    """List keys (their prefixes only)."""

    async def action(s: Services) -> list[Any]:
        user_id = (await s.accounts.get_user(user)).id if user else None
        return await s.accounts.list_keys(user_id)

    keys = with_services(action)
    table = new_table("id", "user", "prefix", "label", "created", "expires", "last used", "status")
    for k in keys:
        status = "revoked" if k.revoked_at else ("active" if k.active else "expired")
        table.add_row(
            str(k.id),
            k.username,
            k.prefix + "…",
            k.label or "",
            when(k.created_at),
            when(k.expires_at),
            when(k.last_used_at),
            status,
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: int) -> None:
    """Revoke a key."""
    info = with_services(lambda s: s.accounts.revoke_key(key_id))
    console.print(f"revoked key {info.id} ({info.prefix}…) of {info.username}")


@keys_app.command("set-quota")
def keys_set_quota(
    key_id: int,
    daily_requests: Annotated[int | None, typer.Option(help="Requests per day (-1: none).")] = None,
    daily_tokens: Annotated[int | None, typer.Option(help="Tokens per day (-1: none).")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute (-1: none).")] = None,
    max_streams: Annotated[int | None, typer.Option(help="Concurrent streams (-1: none).")] = None,
) -> None:
    """Set a key's own limits, which bind its requests on top of its owner's."""
    values = _given_limits(daily_requests, daily_tokens, rpm, max_streams)
    info = with_services(lambda s: s.accounts.set_key_quota(key_id, by=None, **values))
    console.print(f"quota of key {info.id} ({info.prefix}…): {_quota_text(info.quota, 'none')}")


from chatgate.cli.conversations import register as register_conversations  # noqa: E402

register_conversations(app)

from chatgate.cli.ask import ask  # noqa: E402

app.command("ask")(ask)

from chatgate.cli.chat import chat  # noqa: E402

app.command("chat")(chat)


@app.command()
def doctor() -> None:
    """Check the configuration, the database, Redis and every provider; exit 1 if one fails."""
    from chatgate.cli.doctor import run_checks

    try:
        settings = Settings.load(state.config)
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        print(f"FAIL  configuration: {' '.join(str(exc).split())}")
        raise typer.Exit(1) from None
    source = f"{state.config}, " if state.config else ""
    print(f"ok    configuration: {source}data in {settings.data_dir}")
    logging.disable(logging.WARNING)  # the checks say what failed, once
    checks = asyncio.run(run_checks(settings))
    for check in checks:
        print(check.line())
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


def main() -> None:
    app()
