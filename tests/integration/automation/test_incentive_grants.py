"""Granting incentives on a real database: idempotency, caps, budgets, approval, goodwill."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from automation.incentives.models import (
    BudgetAccount,
    BudgetPosting,
    GrantStatus,
    IncentiveGrant,
    Voucher,
    VoucherStatus,
)
from automation.incentives.operations import (
    IncentiveError,
    approve_grant,
    budget_spent,
    create_policy,
    grant_incentive,
    issue_goodwill_voucher,
    reject_grant,
    update_policy,
)
from automation.incentives.policy import BudgetPeriod, RewardKind
from automation.incentives.seed import seed_incentive_examples
from automation.loyalty.operations import balance
from helpdesk.actors import Actor
from helpdesk.crm.timeline import contact_timeline
from helpdesk.extensions import db
from helpdesk.models import AuditEvent, Contact, Ticket
from helpdesk.operations.tickets import close_ticket, reopen_ticket

RULE = Actor.automation(7, "apology rule")


def count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def apology(**kw):
    policy = create_policy(
        actor=Actor.system("test"),
        key=kw.pop("key", "apology"),
        name="Apology",
        kind=kw.pop("kind", RewardKind.FIXED),
        value=kw.pop("value", Decimal("10")),
        currency=kw.pop("currency", "EUR"),
        **kw,
    )
    db.session.commit()
    return policy


def test_close_reopen_close_issues_one_voucher(app, make_ticket):
    policy = apology(valid_days=30)
    ticket = make_ticket()
    actor = Actor.system("test")
    results = []
    for _ in range(2):
        close_ticket(ticket, actor=actor)
        results.append(
            grant_incentive(
                policy, contact=ticket.contact, ticket=ticket, actor=RULE, reason="closed"
            )
        )
        db.session.commit()
        reopen_ticket(ticket, actor=actor)
        db.session.commit()
    assert [r.status for r in results] == ["granted", "granted"]
    assert [r.created for r in results] == [True, False]
    assert results[0].voucher.id == results[1].voucher.id
    assert count(Voucher) == 1 and count(IncentiveGrant) == 1
    assert results[0].key == f"policy:{policy.id}:v1:ticket:{ticket.id}:contact:{ticket.contact.id}"


def test_policy_key_string_resolves_the_current_version(app, make_ticket):
    apology()
    ticket = make_ticket()
    result = grant_incentive(
        "apology", contact=ticket.contact, ticket=ticket, actor=RULE, reason="x"
    )
    assert result.status == "granted" and result.voucher.status is VoucherStatus.ISSUED


def test_editing_a_policy_adds_a_version_and_new_grants_use_it(app, make_ticket):
    v1 = apology()
    v2 = update_policy(v1, actor=Actor.system("admin"), value=Decimal("15"))
    db.session.commit()
    assert (v2.version, v2.is_current, v1.is_current) == (2, True, False)
    ticket = make_ticket()
    result = grant_incentive(
        "apology", contact=ticket.contact, ticket=ticket, actor=RULE, reason="x"
    )
    assert result.voucher.value == Decimal("15.00")
    assert ":v2:" in result.key


def test_concurrent_grants_with_one_key_store_one(app, make_ticket, run_threads):
    policy = apology(cap_count=5, cap_window_days=30)
    ticket = make_ticket()
    ids = (policy.id, ticket.id, ticket.contact_id)

    def work(_):
        p = db.session.get(type(policy), ids[0])
        t = db.session.get(Ticket, ids[1])
        return grant_incentive(p, contact=t.contact, ticket=t, actor=RULE, reason="race").created

    results, errors = run_threads(8, work)
    assert not errors
    assert sorted(results) == [False] * 7 + [True]
    assert count(IncentiveGrant) == 1 and count(Voucher) == 1


def test_concurrent_grants_without_a_cap_store_one(app, make_ticket, run_threads):
    policy = apology()
    ticket = make_ticket()
    ids = (policy.id, ticket.id)

    def work(_):
        t = db.session.get(Ticket, ids[1])
        return grant_incentive(
            "apology", contact=t.contact, ticket=t, actor=RULE, reason="race"
        ).created

    results, errors = run_threads(8, work)
    assert not errors
    assert results.count(True) == 1
    assert count(IncentiveGrant) == 1


def test_cap_per_contact_over_a_window(app, make_contact, make_ticket):
    apology(cap_count=2, cap_window_days=90)
    contact = make_contact()
    statuses = []
    for _ in range(3):
        ticket = make_ticket(contact=contact)
        statuses.append(
            grant_incentive(
                "apology", contact=contact, ticket=ticket, actor=RULE, reason="x"
            ).status
        )
        db.session.commit()
    assert statuses == ["granted", "granted", "cap_reached"]
    other = make_contact(name="Grace Hopper")
    assert (
        grant_incentive(
            "apology", contact=other, ticket=make_ticket(contact=other), actor=RULE, reason="x"
        ).status
        == "granted"
    )
    refusal = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "incentive.refused")
    ).one()
    assert refusal.contact_id == contact.id and refusal.data["refusal"] == "cap_reached"


def test_concurrent_grants_respect_the_cap(app, make_contact, make_ticket, run_threads):
    apology(cap_count=2, cap_window_days=90)
    contact = make_contact()
    tickets = [make_ticket(contact=contact).id for _ in range(6)]

    def work(i):
        t = db.session.get(Ticket, tickets[i])
        return grant_incentive(
            "apology", contact=t.contact, ticket=t, actor=RULE, reason="x"
        ).status

    results, errors = run_threads(6, work)
    assert not errors
    assert sorted(results) == ["cap_reached"] * 4 + ["granted"] * 2
    assert count(IncentiveGrant) == 2


def test_concurrent_grants_stop_exactly_at_the_budget(app, make_contact, run_threads):
    apology(value=Decimal("10"), budget_amount=Decimal("35"), budget_period=BudgetPeriod.MONTH)
    contacts = [make_contact(name=f"C{i}").id for i in range(8)]

    def work(i):
        c = db.session.get(Contact, contacts[i])
        return grant_incentive("apology", contact=c, actor=RULE, reason="budget").status

    results, errors = run_threads(8, work)
    assert not errors
    assert sorted(results) == ["budget_exhausted"] * 5 + ["granted"] * 3
    account = db.session.scalars(select(BudgetAccount)).one()
    assert account.spent_cents == 3000 and account.limit_cents == 3500
    assert count(BudgetPosting) == 3
    assert budget_spent("apology") == Decimal("30.00")


def test_approval_above_threshold_then_approve(app, make_user, make_ticket):
    lead = make_user("admin")
    apology(value=Decimal("50"), approval_threshold=Decimal("20"), valid_days=10)
    ticket = make_ticket()
    result = grant_incentive(
        "apology", contact=ticket.contact, ticket=ticket, actor=RULE, reason="big"
    )
    db.session.commit()
    assert result.status == "pending_approval"
    assert (
        result.voucher.status is VoucherStatus.PENDING_APPROVAL and result.voucher.issued_at is None
    )
    approve_grant(result.grant, actor=Actor.for_user(lead), note="fair")
    db.session.commit()
    voucher = db.session.get(Voucher, result.voucher.id)
    assert voucher.status is VoucherStatus.ISSUED and voucher.expires_at is not None
    assert result.grant.status is GrantStatus.GRANTED and result.grant.decided_by_id == lead.id
    with pytest.raises(IncentiveError):
        approve_grant(result.grant, actor=Actor.for_user(lead))


def test_only_a_lead_may_approve(app, make_user, make_ticket):
    agent = make_user("agent")
    apology(value=Decimal("50"), approval_threshold=Decimal("20"))
    ticket = make_ticket()
    result = grant_incentive(
        "apology", contact=ticket.contact, ticket=ticket, actor=RULE, reason="big"
    )
    with pytest.raises(IncentiveError) as refused:
        approve_grant(result.grant, actor=Actor.for_user(agent))
    assert refused.value.code == "forbidden"


def test_rejection_voids_the_voucher_and_releases_the_budget(app, make_user, make_ticket):
    lead = make_user("admin")
    apology(
        value=Decimal("50"),
        approval_threshold=Decimal("20"),
        budget_amount=Decimal("100"),
        budget_period=BudgetPeriod.QUARTER,
    )
    ticket = make_ticket()
    result = grant_incentive(
        "apology", contact=ticket.contact, ticket=ticket, actor=RULE, reason="big"
    )
    db.session.commit()
    assert budget_spent("apology") == Decimal("50.00")
    reject_grant(result.grant, actor=Actor.for_user(lead), note="no")
    db.session.commit()
    assert result.voucher.status is VoucherStatus.VOID
    assert budget_spent("apology") == Decimal("0.00")
    assert db.session.scalars(select(BudgetAccount)).one().spent_cents == 0
    assert sorted(p.memo for p in db.session.scalars(select(BudgetPosting))) == [
        "grant",
        "released",
    ]


def test_points_policy_posts_to_the_ledger(app, make_ticket):
    create_policy(
        actor=Actor.system("t"),
        key="bonus",
        name="Bonus",
        kind=RewardKind.LOYALTY_POINTS,
        value=Decimal("40"),
    )
    ticket = make_ticket()
    result = grant_incentive(
        "bonus", contact=ticket.contact, ticket=ticket, actor=RULE, reason="thanks"
    )
    again = grant_incentive(
        "bonus", contact=ticket.contact, ticket=ticket, actor=RULE, reason="thanks"
    )
    db.session.commit()
    assert result.voucher is None and result.grant.points_entry_id is not None
    assert not again.created
    assert balance(ticket.contact).available == 40


def test_dry_run_writes_nothing_and_reports_cost(app, make_ticket):
    apology(value=Decimal("12"), approval_threshold=Decimal("10"))
    ticket = make_ticket()
    result = grant_incentive(
        "apology", contact=ticket.contact, ticket=ticket, actor=RULE, reason="x", dry_run=True
    )
    assert result.dry_run and result.status == "pending_approval"
    assert result.cost == Decimal("12.00")
    assert count(IncentiveGrant) == 0 and count(Voucher) == 0


def test_not_eligible_when_conditions_fail(app, make_ticket):
    apology(conditions={"min_reopens": 1})
    ticket = make_ticket()
    assert (
        grant_incentive(
            "apology", contact=ticket.contact, ticket=ticket, actor=RULE, reason="x"
        ).status
        == "not_eligible"
    )


def test_goodwill_within_the_role_limit_is_issued_above_it_waits(app, make_user, make_ticket):
    agent = make_user("agent")
    ticket = make_ticket()
    small = issue_goodwill_voucher(
        ticket.contact, actor=Actor.for_user(agent), amount=Decimal("20"), ticket=ticket
    )
    big = issue_goodwill_voucher(
        ticket.contact, actor=Actor.for_user(agent), amount=Decimal("80"), ticket=ticket
    )
    db.session.commit()
    assert small.status == "granted" and small.voucher.value == Decimal("20.00")
    assert big.status == "pending_approval" and big.voucher.status is VoucherStatus.PENDING_APPROVAL


@pytest.mark.parametrize("app_config", [{"RAPPORT_GOODWILL_LIMITS": {"agent": "100"}}])
def test_goodwill_limit_is_configurable_per_role(app, make_user, make_ticket):
    agent = make_user("agent")
    ticket = make_ticket()
    result = issue_goodwill_voucher(
        ticket.contact, actor=Actor.for_user(agent), amount=Decimal("80")
    )
    assert result.status == "granted"


def test_grants_show_on_the_crm_timeline(app, make_ticket):
    apology()
    ticket = make_ticket()
    grant_incentive("apology", contact=ticket.contact, ticket=ticket, actor=RULE, reason="sorry")
    db.session.commit()
    issued = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "incentive.issued")
    ).one()
    assert issued.contact_id == ticket.contact_id and issued.ticket_id == ticket.id
    assert issued.actor_kind == "automation" and issued.data["code"]
    with app.test_request_context():
        variants = [e.variant for e in contact_timeline(ticket.contact).entries]
    assert "incentive.issued" in variants


def test_seeded_examples_are_valid_and_idempotent(app):
    created = seed_incentive_examples()
    db.session.commit()
    assert len(created) == 8
    assert seed_incentive_examples() == []


def sign_in(client, user):
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True


def test_approval_page_lists_and_decides(app, client, make_user, make_ticket):
    lead = make_user("admin")
    apology(value=Decimal("50"), approval_threshold=Decimal("20"))
    ticket = make_ticket()
    result = grant_incentive(
        "apology", contact=ticket.contact, ticket=ticket, actor=RULE, reason="late parcel"
    )
    db.session.commit()
    sign_in(client, lead)
    page = client.get("/incentives/approvals")
    assert page.status_code == 200 and b"late parcel" in page.data
    response = client.post(f"/incentives/approvals/{result.grant.id}", data={"decision": "approve"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(IncentiveGrant, result.grant.id).status is GrantStatus.GRANTED


def test_agents_see_the_queue_but_cannot_decide(app, client, make_user, make_ticket):
    agent = make_user("agent")
    apology(value=Decimal("50"), approval_threshold=Decimal("20"))
    ticket = make_ticket()
    result = grant_incentive(
        "apology", contact=ticket.contact, ticket=ticket, actor=RULE, reason="x"
    )
    db.session.commit()
    sign_in(client, agent)
    assert client.get("/incentives/approvals").status_code == 200
    assert (
        client.post(
            f"/incentives/approvals/{result.grant.id}", data={"decision": "approve"}
        ).status_code
        == 403
    )


def test_contact_panel_shows_vouchers_points_and_tier(app, make_user, make_ticket):
    from flask import render_template_string
    from flask_login import login_user

    from automation.loyalty.operations import award_points

    agent = make_user("agent")
    apology()
    ticket = make_ticket()
    result = grant_incentive(
        "apology", contact=ticket.contact, ticket=ticket, actor=RULE, reason="x"
    )
    award_points(ticket.contact, 600, actor=RULE, reason="x", key="k")
    db.session.commit()
    with app.test_request_context("/inbox"):
        login_user(agent)
        html = render_template_string(
            '{% include "incentives/_contact_panel.html" %}', contact=ticket.contact, ticket=ticket
        )
    assert result.voucher.display_code in html
    assert "600" in html and "Silver" in html
    assert 'name="amount"' in html  # the goodwill form
