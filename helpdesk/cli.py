"""Flask CLI commands (``flask --app wsgi ...``): thin wrappers around operations."""

from __future__ import annotations

import click
from flask import Flask

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Role
from helpdesk.operations.contacts import OperationError

CLI = Actor.system("cli")


def register(app: Flask) -> None:
    @app.cli.command("create-user")
    @click.option("--email", required=True)
    @click.option("--password", required=True)
    @click.option("--name", default="")
    @click.option("--role", type=click.Choice([r.value for r in Role]), default="agent")
    def create_user_command(email: str, password: str, name: str, role: str) -> None:
        """Create an agent, admin or read-only user."""
        from helpdesk.operations.users import create_user

        try:
            user = create_user(
                actor=CLI, email=email, name=name, password=password, role=Role(role)
            )
        except OperationError as exc:
            raise click.ClickException(str(exc)) from exc
        db.session.commit()
        click.echo(f"created {user.role.value} {user.email} (id {user.id})")

    @app.cli.command("create-token")
    @click.option("--name", required=True)
    @click.option("--scopes", required=True, help="comma-separated scopes, or 'all'")
    def create_token_command(name: str, scopes: str) -> None:
        """Create an API token and print it once."""
        from helpdesk.operations.users import create_api_token

        wanted = [s.strip() for s in scopes.split(",") if s.strip()]
        try:
            token, secret = create_api_token(actor=CLI, name=name, scopes=wanted)
        except OperationError as exc:
            raise click.ClickException(str(exc)) from exc
        db.session.commit()
        click.echo(f"token {token.name} (scopes: {', '.join(token.scopes)}); shown once:")
        click.echo(secret)

    @app.cli.command("seed-demo")
    @click.option("--force", is_flag=True, help="seed even if data exists")
    def seed_demo_command(force: bool) -> None:
        """Create a demo workspace once: agents, contacts, tickets, canned replies, orders."""
        from helpdesk.demo import seed_demo

        result = seed_demo(force=force)
        if result is None:
            click.echo("demo data exists already; nothing to do")
            return
        click.echo(
            f"demo workspace ready: sign in as {result.admin_email} / {result.admin_password}"
        )
