"""CRM pages: contact list and search, the contact page and its forms, companies, the sidebar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from flask import render_template

from helpdesk.actors import Actor
from helpdesk.crm.summary import contact_summary
from helpdesk.crm.timeline import contact_timeline
from helpdesk.extensions import db
from helpdesk.ingest import ingest_message
from helpdesk.models import AuditEvent, Company, Contact, CustomAttribute, Order, OrderStatus
from helpdesk.operations.messages import reply_to_ticket
from tests.factories import inbound


def sign_in(client, user):
    """Start a session for ``user`` without going through the login form."""
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True


@pytest.fixture
def agent(client, make_user):
    user = make_user("agent", name="Grace Hopper")
    sign_in(client, user)
    return user


def add_order(contact, external_id, total, *, status=OrderStatus.PAID, currency="EUR", days_ago=0):
    order = Order(
        external_id=external_id,
        contact_id=contact.id,
        total=Decimal(total),
        currency=currency,
        status=status,
        placed_at=datetime.now(UTC) - timedelta(days=days_ago),
    )
    db.session.add(order)
    db.session.commit()
    return order


def define_attribute(key, type_="text", options=(), label=None, applies_to="contact"):
    definition = CustomAttribute(
        applies_to=applies_to,
        key=key,
        label=label or key.title(),
        type=type_,
        options=list(options),
    )
    db.session.add(definition)
    db.session.commit()
    return definition


def page(response):
    return response.get_data(as_text=True)


# ----------------------------------------------------------------- access


def test_signed_out_visitor_is_sent_to_login(client, make_contact):
    contact = make_contact()
    response = client.get(f"/crm/contacts/{contact.id}")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_read_only_user_can_view_contacts_but_sees_no_edit_forms(client, make_user, make_contact):
    contact = make_contact("Ada Lovelace", email="ada@example.test")
    sign_in(client, make_user("read_only"))
    assert client.get("/crm/").status_code == 200
    response = client.get(f"/crm/contacts/{contact.id}")
    assert response.status_code == 200
    assert "ada@example.test" in page(response)
    assert f"/crm/contacts/{contact.id}/details" not in page(response)
    assert "Merge with another contact" not in page(response)


@pytest.mark.parametrize(
    "path", ["details", "notes", "attributes", "identities", "merge", "merge/999"]
)
def test_read_only_user_cannot_edit_a_contact(client, make_user, make_contact, path):
    contact = make_contact("Ada Lovelace")
    sign_in(client, make_user("read_only"))
    method = client.get if path.startswith("merge") else client.post
    response = method(f"/crm/contacts/{contact.id}/{path}", data={"name": "Changed"})
    assert response.status_code == 403
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).name == "Ada Lovelace"


def test_read_only_user_cannot_create_a_company_or_import(client, make_user):
    sign_in(client, make_user("read_only"))
    assert client.post("/crm/companies", data={"name": "Acme"}).status_code == 403
    assert client.get("/crm/import").status_code == 403


def test_unknown_contact_is_404(client, agent):
    response = client.get("/crm/contacts/424242")
    assert response.status_code == 404
    assert "no contact #424242" in page(response)


# ------------------------------------------------------------ list and search


def test_contact_list_finds_by_name_identity_and_company(client, agent, make_contact):
    acme = Company(name="Acme Widgets")
    db.session.add(acme)
    db.session.commit()
    make_contact("Ada Lovelace", email="ada@example.test")
    make_contact("Charles Babbage", email="cb@engines.test", phone="+30 697 123 4567")
    worker = make_contact("Mary Somerville", email="mary@example.test")
    worker.company_id = acme.id
    db.session.commit()

    by_name = page(client.get("/crm/?q=lovelace"))
    assert "Ada Lovelace" in by_name and "Charles Babbage" not in by_name

    by_email = page(client.get("/crm/?q=engines.test"))
    assert "Charles Babbage" in by_email and "Ada Lovelace" not in by_email

    by_phone = page(client.get("/crm/?q=697 123"))
    assert "Charles Babbage" in by_phone

    by_company = page(client.get("/crm/?q=acme"))
    assert "Mary Somerville" in by_company and "Ada Lovelace" not in by_company


def test_search_treats_percent_and_underscore_literally(client, agent, make_contact):
    make_contact("Ada Lovelace")
    assert "Ada Lovelace" not in page(client.get("/crm/?q=%25"))
    assert "No contact matches" in page(client.get("/crm/?q=_"))


def test_contact_list_is_paginated(client, agent, make_contact):
    for i in range(27):
        make_contact(f"Customer {i:02d}")
    first = page(client.get("/crm/"))
    assert "Customer 26" in first and "Customer 01" not in first
    assert "Page 1 of 2" in first
    second = page(client.get("/crm/?page=2"))
    assert "Customer 01" in second and "Customer 26" not in second


def test_merged_contacts_are_left_out_of_the_list(client, agent, make_contact):
    kept = make_contact("Kept Person")
    gone = make_contact("Gone Person")
    gone.merged_into_id = kept.id
    db.session.commit()
    listing = page(client.get("/crm/"))
    assert "Kept Person" in listing and "Gone Person" not in listing


# --------------------------------------------------------------- contact page


def test_contact_page_shows_identities_company_and_shop_figures(client, agent, make_contact):
    contact = make_contact("Ada Lovelace", email="ada@example.test", phone="+44 20 7946 0000")
    company = Company(name="Analytical Engines")
    db.session.add(company)
    contact.company_id = None
    db.session.commit()
    contact.company_id = company.id
    db.session.commit()
    add_order(contact, "A-1", "40.00", days_ago=30)
    add_order(contact, "A-2", "60.00", days_ago=2)
    add_order(contact, "A-3", "999.00", status=OrderStatus.CANCELLED, days_ago=1)

    html = page(client.get(f"/crm/contacts/{contact.id}"))
    assert "ada@example.test" in html and "+442079460000" in html
    assert "Analytical Engines" in html
    assert "€100.00" in html  # total spend: cancelled orders do not count
    assert "€50.00" in html  # average order value
    assert "Repeat customer" in html
    assert "A-3" in html  # but it is listed among the latest orders


def test_agent_edits_name_company_and_language(client, agent, make_contact):
    contact = make_contact("Ada")
    company = Company(name="Acme")
    db.session.add(company)
    db.session.commit()
    response = client.post(
        f"/crm/contacts/{contact.id}/details",
        data={"name": "Ada Lovelace", "company_id": str(company.id), "locale": "el"},
    )
    assert response.status_code == 302
    db.session.expire_all()
    contact = db.session.get(Contact, contact.id)
    assert (contact.name, contact.company_id, contact.locale) == ("Ada Lovelace", company.id, "el")
    assert "Contact saved." in page(client.get(response.headers["Location"]))


def test_contact_form_refuses_an_unknown_company_next_to_the_field(client, agent, make_contact):
    contact = make_contact("Ada")
    response = client.post(
        f"/crm/contacts/{contact.id}/details",
        data={"name": "Ada", "company_id": "999", "locale": ""},
    )
    assert response.status_code == 422
    assert 'id="company_id-error"' in page(response)
    assert 'aria-invalid="true"' in page(response)


def test_agent_saves_notes(client, agent, make_contact):
    contact = make_contact("Ada")
    response = client.post(f"/crm/contacts/{contact.id}/notes", data={"notes": "Prefers SMS."})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).notes == "Prefers SMS."


def test_notes_longer_than_the_limit_are_refused(client, agent, make_contact):
    contact = make_contact("Ada")
    response = client.post(f"/crm/contacts/{contact.id}/notes", data={"notes": "x" * 20001})
    assert response.status_code == 422
    assert 'id="notes-error"' in page(response)


def test_attribute_form_follows_the_definitions_and_stores_typed_values(
    client, agent, make_contact
):
    define_attribute("vip", "boolean", label="VIP")
    define_attribute("shoe_size", "number", label="Shoe size")
    define_attribute("birthday", "date")
    define_attribute("tier", "choice", options=["bronze", "gold"])
    contact = make_contact("Ada")

    form = page(client.get(f"/crm/contacts/{contact.id}"))
    assert 'name="attr-vip" type="checkbox"' in form
    assert 'name="attr-birthday"' in form and 'type="date"' in form
    assert '<option value="gold">gold</option>' in form

    response = client.post(
        f"/crm/contacts/{contact.id}/attributes",
        data={
            "attr-vip": "y",
            "attr-shoe_size": "38",
            "attr-birthday": "1815-12-10",
            "attr-tier": "gold",
        },
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).attributes == {
        "vip": True,
        "shoe_size": 38,
        "birthday": "1815-12-10",
        "tier": "gold",
    }


def test_attribute_with_a_wrong_type_shows_its_error_beside_the_field(client, agent, make_contact):
    define_attribute("shoe_size", "number")
    define_attribute("tier", "choice", options=["bronze", "gold"])
    contact = make_contact("Ada")
    response = client.post(
        f"/crm/contacts/{contact.id}/attributes",
        data={"attr-shoe_size": "large", "attr-tier": "platinum"},
    )
    assert response.status_code == 422
    html = page(response)
    assert 'id="attr-shoe_size-error"' in html and "is not a valid number" in html
    assert 'id="attr-tier-error"' in html and "is not a valid choice" in html
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).attributes == {}


def test_agent_adds_an_identity_on_another_channel(client, agent, make_contact):
    contact = make_contact("Ada", email="ada@example.test")
    response = client.post(
        f"/crm/contacts/{contact.id}/identities",
        data={"kind": "whatsapp", "value": "whatsapp:+30 697 000 1111", "display_name": ""},
    )
    assert response.status_code == 302
    db.session.expire_all()
    values = {(i.kind.value, i.value) for i in db.session.get(Contact, contact.id).identities}
    assert ("whatsapp", "+306970001111") in values


def test_identity_owned_by_someone_else_is_refused_with_a_merge_suggestion(
    client, agent, make_contact
):
    owner = make_contact("Charles Babbage", email="cb@example.test")
    contact = make_contact("Ada", email="ada@example.test")
    response = client.post(
        f"/crm/contacts/{contact.id}/identities",
        data={"kind": "email", "value": "CB@example.test"},
    )
    assert response.status_code == 409
    html = page(response)
    assert "cb@example.test already belongs to another contact" in html
    assert "merge the two contacts instead" in html
    assert f"/crm/contacts/{owner.id}/merge/{contact.id}" in html
    assert "Charles Babbage" in html
    db.session.expire_all()
    assert len(db.session.get(Contact, contact.id).identities) == 1


def test_identity_that_is_not_an_email_address_is_refused(client, agent, make_contact):
    contact = make_contact("Ada")
    response = client.post(
        f"/crm/contacts/{contact.id}/identities", data={"kind": "email", "value": "not-an-address"}
    )
    assert response.status_code == 422
    assert 'id="value-error"' in page(response)


def test_names_are_isolated_for_right_to_left_text(client, agent, make_contact):
    contact = make_contact("نور الهدى")
    html = page(client.get(f"/crm/contacts/{contact.id}"))
    assert "<bdi>نور الهدى</bdi>" in html


# ------------------------------------------------------------------ timeline


def test_timeline_lists_tickets_messages_orders_and_changes_newest_first(app, make_user):
    agent = make_user("agent", name="Grace Hopper")
    result = ingest_message(inbound("My parcel is late", sender="ada@example.test"))
    db.session.commit()
    contact = result.message.contact
    reply_to_ticket(result.ticket, actor=Actor.for_user(agent), author=agent, body="On its way!")
    db.session.commit()
    add_order(contact, "A-1", "25.00")

    with app.test_request_context():
        entries = contact_timeline(contact).entries
    kinds = [e.kind for e in entries]
    assert {"ticket", "message", "order", "event"} <= set(kinds)
    assert [e.at for e in entries] == sorted((e.at for e in entries), reverse=True)
    assert entries[0].kind == "order"
    titles = [e.title for e in entries]
    assert "Grace Hopper replied" in titles and "Customer wrote" in titles
    assert "Contact created" in titles
    assert f"Ticket #{result.ticket.id} opened" in titles


def test_timeline_is_paginated(client, agent, make_contact):
    contact = make_contact("Busy Customer")
    for i in range(45):
        add_order(contact, f"O-{i:02d}", "1.00", days_ago=i)
    first = page(client.get(f"/crm/contacts/{contact.id}"))
    assert "O-00" in first and "O-44" not in first and "Older" in first
    second = page(client.get(f"/crm/contacts/{contact.id}?page=2"))
    assert "O-44" in second and "Newer" in second


# ------------------------------------------------------------------ companies


def test_agent_creates_a_company_and_its_page_lists_its_contacts(client, agent, make_contact):
    response = client.post("/crm/companies", data={"name": "Acme", "domain": "acme.example"})
    assert response.status_code == 302
    company = db.session.query(Company).filter_by(name="Acme").one()
    contact = make_contact("Wile E. Coyote")
    contact.company_id = company.id
    db.session.commit()
    html = page(client.get(f"/crm/companies/{company.id}"))
    assert "Wile E. Coyote" in html and "acme.example" in html
    assert "Acme" in page(client.get("/crm/companies"))


def test_company_name_must_be_unique(client, agent):
    db.session.add(Company(name="Acme"))
    db.session.commit()
    response = client.post("/crm/companies", data={"name": "acme"})
    assert response.status_code == 422
    assert 'id="name-error"' in page(response) and "exists already" in page(response)


def test_company_without_a_name_is_refused(client, agent):
    response = client.post("/crm/companies", data={"name": ""})
    assert response.status_code == 422
    assert 'id="name-error"' in page(response)


def test_unknown_company_is_404(client, agent):
    assert client.get("/crm/companies/999").status_code == 404


# --------------------------------------------------------- summary and sidebar


def test_summary_counts_net_spend_in_the_main_currency(app, make_contact):
    contact = make_contact("Ada")
    add_order(contact, "A-1", "100.00", days_ago=10)
    refunded = add_order(contact, "A-2", "50.00", status=OrderStatus.PARTIALLY_REFUNDED, days_ago=5)
    refunded.refunded_total = Decimal("20.00")
    db.session.commit()
    add_order(contact, "A-3", "10.00", currency="USD", days_ago=1)
    add_order(contact, "A-4", "70.00", status=OrderStatus.PENDING)

    summary = contact_summary(contact)
    assert summary.orders == 3
    assert (summary.currency, summary.total_spend) == ("EUR", Decimal("130.00"))
    assert summary.average_order_value == Decimal("65.00")
    assert summary.has_mixed_currencies and dict(summary.spend_by_currency)["USD"] == Decimal(
        "10.00"
    )
    assert summary.last_order_at is not None and summary.last_order_at.tzinfo is not None
    assert summary.is_repeat_customer
    assert [o.external_id for o in summary.recent_orders] == ["A-4", "A-3", "A-2", "A-1"]


def test_summary_of_a_contact_without_orders_is_zero(app, make_contact):
    summary = contact_summary(make_contact("New"))
    assert (summary.orders, summary.total_spend, summary.currency) == (0, Decimal("0.00"), None)
    assert not summary.is_repeat_customer


def test_sidebar_shows_figures_recent_orders_and_other_open_tickets(app, make_contact, make_ticket):
    contact = make_contact("Ada Lovelace", email="ada@example.test")
    current = make_ticket(contact, subject="Broken kettle")
    other = make_ticket(contact, subject="Refund for mug")
    for i in range(6):
        add_order(contact, f"S-{i}", "10.00", days_ago=i)

    with app.test_request_context():
        html = render_template(
            "crm/_sidebar.html", contact=contact, crm=contact_summary(contact), ticket=current
        )
    assert "<bdi>Ada Lovelace</bdi>" in html and "ada@example.test" in html
    assert "€60.00" in html
    assert "S-0" in html and "S-4" in html and "S-5" not in html  # the last five
    assert "Refund for mug" in html and f"#{other.id}" in html
    assert "Broken kettle" not in html  # the ticket it sits beside
    assert f"/crm/contacts/{contact.id}" in html


def test_sidebar_renders_without_a_ticket_in_context(app, make_contact):
    contact = make_contact("Ada")
    with app.test_request_context():
        html = render_template("crm/_sidebar.html", contact=contact, crm=contact_summary(contact))
    assert "crm-sidebar" in html and "Other open tickets" not in html


def test_contact_edits_are_audited_and_appear_on_the_timeline(client, agent, make_contact):
    contact = make_contact("Ada")
    client.post(f"/crm/contacts/{contact.id}/notes", data={"notes": "Call after 5pm"})
    actions = [e.action for e in db.session.query(AuditEvent).filter_by(contact_id=contact.id)]
    assert "contact.updated" in actions
    assert "Contact details changed (notes)" in page(client.get(f"/crm/contacts/{contact.id}"))
