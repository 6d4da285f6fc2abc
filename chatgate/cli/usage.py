"""``chatgate usage``: what everyone (or one user) used, per day, user and model; and
``chatgate usage reconcile``, which settles the requests a crash left in flight."""

from __future__ import annotations

from typing import Annotated

import typer

from chatgate.cli.output import new_table
from chatgate.core.usage import UsageRow
from chatgate.services import Services

usage_app = typer.Typer(
    help="Print requests, tokens, errors and cost per day, user and model.",
    invoke_without_command=True,
)


@usage_app.command("reconcile")
def reconcile(
    older_than: Annotated[
        float,
        typer.Option(
            "--older-than",
            min=0,
            help="Only requests that started more than this many seconds ago.",
        ),
    ] = 0.0,
) -> None:
    """Settle the requests a crash left in flight.

    They are marked "interrupted" in the request log and stay counted: the day's totals
    counted them when they were reserved."""
    from chatgate.cli.main import console, with_services

    async def action(services: Services) -> int:
        return await services.usage_queries.reconcile(older_than)

    settled = with_services(action)
    console.print(f"{settled} request(s) left in flight settled as interrupted")


@usage_app.callback()
def usage(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="Only this user.")] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="The last N days, with today.")] = 7,
) -> None:
    """Print requests, tokens, errors and cost per day, user and model."""
    if ctx.invoked_subcommand is not None:
        return
    from chatgate.cli.main import console, with_services

    async def action(services: Services) -> tuple[str, str, list[UsageRow]]:
        start, end = services.usage_queries.days_back(days)
        user_id = (await services.accounts.get_user(user)).id if user else None
        rows = await services.usage_queries.report(
            start=start, end=end, user_id=user_id, group_by=("day", "user", "model")
        )
        return start, end, rows

    start, end, rows = with_services(action)
    table = new_table(
        "day",
        "user",
        "model",
        "requests",
        "prompt",
        "completion",
        "errors",
        "cost",
        title=f"usage from {start} to {end}" + (f" for {user}" if user else ""),
    )
    for row in rows:
        table.add_row(
            row.day or "",
            row.user or "",
            row.model or "",
            str(row.requests),
            str(row.prompt_tokens),
            str(row.completion_tokens),
            str(row.errors),
            f"{row.cost:.4f}",
        )
    if rows:
        table.add_section()
        table.add_row(
            "total",
            "",
            "",
            str(sum(r.requests for r in rows)),
            str(sum(r.prompt_tokens for r in rows)),
            str(sum(r.completion_tokens for r in rows)),
            str(sum(r.errors for r in rows)),
            f"{sum(r.cost for r in rows):.4f}",
        )
    console.print(table)
