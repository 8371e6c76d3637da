"""API contacts: search, read with CRM figures, create, update, merge."""

from __future__ import annotations

from decimal import Decimal

import pytest

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Contact, CustomAttribute, Ticket
from helpdesk.operations.orders import record_order
from helpdesk.operations.users import create_api_token
from helpdesk.search import install_search


@pytest.fixture(autouse=True)
def search_installed(app):
    with db.engine.begin() as connection:
        install_search(connection)


@pytest.fixture
def api(client):
    _, secret = create_api_token(actor=Actor.system("test"), name="crm", scopes=["all"])
    db.session.commit()

    def call(method: str, path: str, **kw):
        headers = {"Authorization": f"Bearer {secret}", **kw.pop("headers", {})}
        return getattr(client, method)(f"/api/v1{path}", headers=headers, **kw)

    return call


def test_contact_search_finds_by_name_prefix_in_any_script(api, make_contact):
    eleni = make_contact("Ελένη Παπαδοπούλου")
    make_contact("Nagy Ádám")
    layla = make_contact("ليلى حداد")
    assert [c["id"] for c in api("get", "/contacts?q=ελέν").get_json()["data"]] == [eleni.id]
    assert [c["id"] for c in api("get", "/contacts?q=ليلى").get_json()["data"]] == [layla.id]


def test_contact_search_finds_by_email_and_phone(api, make_contact):
    ada = make_contact("Ada", email="ada@example.test", phone="+36 1 234 5678")
    make_contact("Bob", email="bob@example.test")
    assert [c["id"] for c in api("get", "/contacts?q=ada@example.test").get_json()["data"]] == [
        ada.id
    ]
    assert [c["id"] for c in api("get", "/contacts?q=%2B36 1 234").get_json()["data"]] == [ada.id]


def test_contact_list_pages_newest_first(api, make_contact):
    made = [make_contact(f"C{i}") for i in range(3)]
    first = api("get", "/contacts?limit=2").get_json()
    second = api("get", f"/contacts?limit=2&cursor={first['next_cursor']}").get_json()
    assert [c["id"] for c in first["data"] + second["data"]] == [c.id for c in reversed(made)]
    assert second["next_cursor"] is None


def test_contact_detail_carries_identities_and_order_figures(api, make_contact):
    contact = make_contact("Ada", email="ada@example.test")
    for number, total in (("A1", "30.00"), ("A2", "10.00")):
        record_order(
            actor=Actor.system("t"),
            external_id=number,
            total=Decimal(total),
            currency="EUR",
            contact=contact,
        )
    db.session.commit()
    body = api("get", f"/contacts/{contact.id}").get_json()
    assert body["identities"] == [
        {"kind": "email", "value": "ada@example.test", "display_name": None}
    ]
    assert body["summary"]["orders"] == 2
    assert body["summary"]["total_spend"] == "40.00"
    assert body["summary"]["average_order_value"] == "20.00"
    assert body["summary"]["is_repeat_customer"] is True


def test_create_contact_with_attributes(api):
    db.session.add(CustomAttribute(applies_to="contact", key="tier", label="Tier", type="text"))
    db.session.commit()
    response = api(
        "post",
        "/contacts",
        json={"name": "Kovács Éva", "email": "Eva@Example.test", "attributes": {"tier": "gold"}},
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["identities"][0]["value"] == "eva@example.test"
    assert body["attributes"] == {"tier": "gold"}


def test_creating_a_contact_whose_email_is_taken_is_a_409(api, make_contact):
    owner = make_contact(email="taken@example.test")
    response = api("post", "/contacts", json={"email": "taken@example.test"})
    assert response.status_code == 409
    assert response.get_json()["error"]["contact_id"] == owner.id


def test_update_contact_renames_and_adds_a_phone(api, make_contact):
    contact = make_contact("Old Name")
    response = api(
        "patch", f"/contacts/{contact.id}", json={"name": "New Name", "phone": "+30 210 1234567"}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["name"] == "New Name"
    assert {"kind": "phone", "value": "+302101234567", "display_name": None} in body["identities"]


def test_update_with_an_unknown_attribute_is_a_422(api, make_contact):
    contact = make_contact()
    response = api("patch", f"/contacts/{contact.id}", json={"attributes": {"nope": 1}})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "attributes"


def test_merge_moves_tickets_and_hides_the_merged_contact_from_search(
    api, make_contact, make_ticket
):
    keep = make_contact("Ada Lovelace", email="ada@example.test")
    dupe = make_contact("Ada L.", email="ada.l@example.test")
    ticket = make_ticket(contact=dupe)
    response = api("post", f"/contacts/{dupe.id}/merge", json={"into": keep.id})
    assert response.status_code == 200
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).contact_id == keep.id
    assert db.session.get(Contact, dupe.id).merged_into_id == keep.id
    found = [c["id"] for c in api("get", "/contacts?q=ada").get_json()["data"]]
    assert found == [keep.id]


def test_merging_into_itself_is_a_409(api, make_contact):
    contact = make_contact()
    response = api("post", f"/contacts/{contact.id}/merge", json={"into": contact.id})
    assert response.status_code == 409


def test_merging_into_an_unknown_contact_is_a_422_naming_into(api, make_contact):
    contact = make_contact()
    response = api("post", f"/contacts/{contact.id}/merge", json={"into": 999})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "into"
