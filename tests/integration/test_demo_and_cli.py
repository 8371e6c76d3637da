"""The two-command promise: CLI commands and the demo seed."""

from __future__ import annotations

from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.models import ApiToken, Message, Ticket, TicketStatus, User
from helpdesk.operations.users import find_api_token


def test_seed_demo_creates_tickets_in_every_status_and_runs_once(runner):
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert "admin@rapport.test" in first.output
    statuses = set(db.session.scalars(select(Ticket.status)))
    assert statuses == set(TicketStatus)
    assert db.session.scalar(select(func.count(Message.id))) > len(statuses)
    second = runner.invoke(args=["seed-demo"])
    assert "nothing to do" in second.output
    assert db.session.scalar(select(func.count(User.id))) == 5


def test_create_user_command_refuses_a_short_password(runner):
    result = runner.invoke(
        args=["create-user", "--email", "a@b.test", "--password", "short", "--role", "admin"]
    )
    assert result.exit_code != 0
    assert "at least 8" in result.output
    assert db.session.scalar(select(func.count(User.id))) == 0


def test_create_user_command_creates_an_admin_with_a_hashed_password(runner):
    result = runner.invoke(
        args=[
            "create-user",
            "--email",
            "Boss@B.test",
            "--password",
            "long-enough",
            "--role",
            "admin",
        ]
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalars(select(User)).one()
    assert user.email == "boss@b.test" and user.role.value == "admin"
    assert "long-enough" not in user.password_hash


def test_create_token_prints_the_secret_once_and_stores_only_its_hash(runner):
    result = runner.invoke(args=["create-token", "--name", "shop", "--scopes", "all"])
    assert result.exit_code == 0, result.output
    secret = result.output.strip().splitlines()[-1]
    token = db.session.scalars(select(ApiToken)).one()
    assert secret.startswith("rpt_") and secret not in token.token_hash
    assert find_api_token(secret).id == token.id
    assert "orders:write" in token.scopes


def test_create_token_rejects_unknown_scopes(runner):
    result = runner.invoke(args=["create-token", "--name", "x", "--scopes", "tickets:read,root"])
    assert result.exit_code != 0
    assert "root" in result.output
