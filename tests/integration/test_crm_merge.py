"""Merging two contacts from the CRM: pick, confirm, move, and say so on both timelines."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.models import Contact, Order, Ticket


def sign_in(client, user):
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True


@pytest.fixture
def agent(client, make_user):
    user = make_user("agent", name="Grace Hopper")
    sign_in(client, user)
    return user


@pytest.fixture
def pair(make_contact, make_ticket):
    """A duplicate (email + phone, one ticket, one order) and the contact to keep."""
    source = make_contact("Ada L.", email="ada.work@example.test", phone="+30 210 000 0000")
    target = make_contact("Ada Lovelace", email="ada@example.test")
    make_ticket(source, subject="Where is my order?")
    make_ticket(target, subject="Gift wrapping")
    db.session.add(
        Order(
            external_id="SRC-1",
            contact_id=source.id,
            total=Decimal("42.00"),
            currency="EUR",
            placed_at=datetime.now(UTC),
        )
    )
    db.session.commit()
    return source, target


def page(response):
    return response.get_data(as_text=True)


def test_merge_search_finds_other_contacts_but_not_itself(client, agent, pair):
    source, target = pair
    html = page(client.get(f"/crm/contacts/{source.id}/merge?q=ada"))
    assert f"/crm/contacts/{source.id}/merge/{target.id}" in html
    assert f"/crm/contacts/{source.id}/merge/{source.id}" not in html


def test_merge_target_can_be_picked_by_number(client, agent, pair):
    source, target = pair
    html = page(client.get(f"/crm/contacts/{source.id}/merge?q=%23{target.id}"))
    assert f"/crm/contacts/{source.id}/merge/{target.id}" in html


def test_confirm_page_shows_what_moves_and_changes_nothing(client, agent, pair):
    source, target = pair
    response = client.get(f"/crm/contacts/{source.id}/merge/{target.id}")
    assert response.status_code == 200
    html = page(response)
    assert "ada.work@example.test" in html and "+302100000000" in html
    assert "2 identities" in html and "1 ticket" in html and "1 order" in html
    assert "Where is my order?" in html
    db.session.expire_all()
    assert db.session.get(Contact, source.id).merged_into_id is None


def test_merge_moves_identities_tickets_and_orders(client, agent, pair):
    source, target = pair
    response = client.post(f"/crm/contacts/{source.id}/merge/{target.id}")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/crm/contacts/{target.id}")

    db.session.expire_all()
    kept = db.session.get(Contact, target.id)
    assert {i.value for i in kept.identities} == {
        "ada@example.test",
        "ada.work@example.test",
        "+302100000000",
    }
    subjects = db.session.scalars(select(Ticket.subject).where(Ticket.contact_id == target.id))
    assert set(subjects) == {"Where is my order?", "Gift wrapping"}
    assert (
        db.session.scalar(select(Order.contact_id).where(Order.external_id == "SRC-1")) == target.id
    )
    assert db.session.get(Contact, source.id).merged_into_id == target.id


def test_both_timelines_record_the_merge(client, agent, pair):
    source, target = pair
    client.post(f"/crm/contacts/{source.id}/merge/{target.id}")

    kept = page(client.get(f"/crm/contacts/{target.id}"))
    assert f"Contact #{source.id} Ada L. merged into this one" in kept
    assert "2 identities, 1 tickets and 1 orders moved here" in kept
    assert "Where is my order?" in kept  # the moved ticket now sits on this timeline

    gone = page(client.get(f"/crm/contacts/{source.id}"))
    assert f"Merged into contact #{target.id}" in gone
    assert "This contact was merged into" in gone
    assert f"/crm/contacts/{source.id}/details" not in gone  # no edit forms on a merged contact


def test_a_merged_contact_cannot_be_merged_again_or_edited(client, agent, pair, make_contact):
    source, target = pair
    client.post(f"/crm/contacts/{source.id}/merge/{target.id}")
    third = make_contact("Someone Else")
    assert client.post(f"/crm/contacts/{source.id}/merge/{third.id}").status_code == 409
    assert client.post(f"/crm/contacts/{source.id}/notes", data={"notes": "x"}).status_code == 409


def test_merging_into_a_merged_contact_sends_you_back_to_pick(client, agent, pair, make_contact):
    source, target = pair
    client.post(f"/crm/contacts/{source.id}/merge/{target.id}")
    third = make_contact("Someone Else")
    response = client.post(f"/crm/contacts/{third.id}/merge/{source.id}", follow_redirects=True)
    assert f"was itself merged into #{target.id}" in page(response)
    db.session.expire_all()
    assert db.session.get(Contact, third.id).merged_into_id is None


def test_a_contact_cannot_be_merged_into_itself(client, agent, pair):
    source, _ = pair
    response = client.post(f"/crm/contacts/{source.id}/merge/{source.id}", follow_redirects=True)
    assert "cannot be merged into itself" in page(response)


def test_merge_into_an_unknown_contact_is_404(client, agent, pair):
    source, _ = pair
    assert client.get(f"/crm/contacts/{source.id}/merge/9999").status_code == 404


def test_live_contact_follows_a_chain_of_merges_to_the_contact_kept(app, make_contact):
    from helpdesk.actors import Actor
    from helpdesk.extensions import db
    from helpdesk.operations.contacts import live_contact, merge_contacts

    first, second, kept = (make_contact(name=n, email=f"{n}@example.test") for n in ("a", "b", "c"))
    merge_contacts(first, second, actor=Actor.system("test"))
    merge_contacts(second, kept, actor=Actor.system("test"))
    db.session.commit()
    assert live_contact(first).id == kept.id
    assert live_contact(kept).id == kept.id
