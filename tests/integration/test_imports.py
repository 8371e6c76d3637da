"""CSV imports of contacts and orders: good rows in, bad rows reported, nothing half-written."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from channels.base import IdentityKind
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Company, Contact, CustomAttribute, Order, OrderStatus
from helpdesk.operations.contacts import find_contact
from helpdesk.operations.imports import (
    ImportReport,
    RowError,
    import_contacts_csv,
    import_orders_csv,
)
from helpdesk.operations.users import create_api_token

ADMIN = Actor.system("import")
EMAIL = IdentityKind.EMAIL


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def tier(app):
    db.session.add(
        CustomAttribute(
            applies_to="contact",
            key="tier",
            label="Tier",
            type="choice",
            options=["gold", "silver"],
        )
    )
    db.session.commit()


# ------------------------------------------------------------------ contacts


def test_contacts_import_reads_a_bom_semicolons_and_any_script(app, tier):
    data = (
        "\ufeffname;email;phone;company;locale;attr:tier\n"
        "Ελένη Παπαδοπούλου;eleni@example.test;+30 210 1234567;Ακρόπολις ΑΕ;el;gold\n"
        "Kovács Éva;eva@example.test;;Tűzoltó Kft.;hu;silver\n"
        "ليلى حداد;layla@example.test;;;ar;\n"
    ).encode()
    report = import_contacts_csv(data, actor=ADMIN)
    db.session.commit()
    assert report == ImportReport(created=3, updated=0, skipped=0, errors=[])
    eleni = find_contact(EMAIL, "eleni@example.test")
    assert eleni.name == "Ελένη Παπαδοπούλου"
    assert eleni.company.name == "Ακρόπολις ΑΕ"
    assert eleni.attributes == {"tier": "gold"}
    assert eleni.locale == "el"
    assert find_contact(EMAIL, "layla@example.test").name == "ليلى حداد"


def test_contacts_import_reports_bad_rows_and_keeps_the_good_ones(app, tier):
    data = (
        "name,email,phone,attr:tier\n"
        "Good One,good@example.test,,gold\n"
        "Bad Mail,not-an-address,,\n"
        "Bad Tier,tier@example.test,,platinum\n"
        "No Address,,,\n"
        "Short Row,short@example.test\n"
        "Good Two,,+36 1 234 5678,\n"
    )
    report = import_contacts_csv(data, actor=ADMIN)
    db.session.commit()
    assert (report.created, report.updated, report.skipped) == (2, 0, 0)
    assert [(e.row, e.field) for e in report.errors] == [
        (3, "email"),
        (4, "attr:tier"),
        (5, "email"),
        (6, None),
    ]
    assert "not-an-address" in report.errors[0].message
    assert count(Contact) == 2
    # The bad-tier row was refused whole: no contact and no identity left behind.
    assert find_contact(EMAIL, "tier@example.test") is None


def test_contacts_import_updates_existing_contacts_and_skips_unchanged_ones(app, make_contact):
    contact = make_contact("Ada", email="ada@example.test")
    data = (
        "name,email,phone\n"
        "Ada Lovelace,ADA@example.test,+44 20 1234 5678\n"
        "Ada Lovelace,ada@example.test,\n"
    )
    report = import_contacts_csv(data, actor=ADMIN)
    db.session.commit()
    assert (report.created, report.updated, report.skipped) == (0, 1, 1)
    db.session.refresh(contact)
    assert contact.name == "Ada Lovelace"
    assert {i.value for i in contact.identities} == {"ada@example.test", "+442012345678"}


def test_row_whose_email_and_phone_belong_to_two_contacts_is_reported(app, make_contact):
    make_contact("A", email="a@example.test")
    make_contact("B", email="b@example.test", phone="+3611111111")
    report = import_contacts_csv("email,phone\na@example.test,+36 1 111 1111\n", actor=ADMIN)
    assert report.errors[0].field == "phone"


def test_missing_column_is_reported_once_and_nothing_is_imported(app):
    report = import_contacts_csv("name,company\nAda,ACME\n", actor=ADMIN)
    assert report == ImportReport(
        0, 0, 0, [RowError(1, "missing column 'email' or 'phone'", "email")]
    )


def test_file_that_is_not_utf8_is_reported(app):
    report = import_contacts_csv(
        "name,email\nÁdám,adam@example.test\n".encode("cp1250"), actor=ADMIN
    )
    assert report.created == 0 and "UTF-8" in report.errors[0].message


def test_companies_are_shared_between_rows(app):
    data = "name,email,company\nA,a@example.test,ACME\nB,b@example.test,ACME\n"
    import_contacts_csv(data, actor=ADMIN)
    assert count(Company) == 1


# ------------------------------------------------------------------ orders


ORDERS = (
    "external_id;email;total;currency;status;placed_at;refunded_total\n"
    "A-1;ada@example.test;49,90;EUR;paid;2024-05-01;\n"
    "A-2;ada@example.test;12000;HUF;fulfilled;2024-05-02T10:30:00+02:00;\n"
    "A-3;bob@example.test;20.00;EUR;;2024-05-03;5\n"
)


def test_orders_import_creates_orders_and_contacts(app):
    report = import_orders_csv(ORDERS, actor=ADMIN)
    db.session.commit()
    assert report == ImportReport(3, 0, 0, [])
    first = db.session.scalars(select(Order).where(Order.external_id == "A-1")).one()
    assert first.total == Decimal("49.90") and first.currency == "EUR"
    second = db.session.scalars(select(Order).where(Order.external_id == "A-2")).one()
    assert second.placed_at.hour == 8  # stored in UTC
    third = db.session.scalars(select(Order).where(Order.external_id == "A-3")).one()
    assert third.status is OrderStatus.PARTIALLY_REFUNDED
    assert count(Contact) == 2


def test_importing_the_same_orders_twice_skips_them(app):
    import_orders_csv(ORDERS, actor=ADMIN)
    again = import_orders_csv(ORDERS, actor=ADMIN)
    assert (again.created, again.updated, again.skipped) == (0, 0, 3)
    assert count(Order) == 3


def test_orders_import_reports_each_kind_of_bad_row(app):
    data = (
        "external_id,email,total,currency,status,placed_at,refunded_total\n"
        "B-1,ada@example.test,10.00,XXY,,,\n"
        "B-2,ada@example.test,-3,EUR,,,\n"
        "B-3,ada@example.test,10,EUR,,31/31/2024,\n"
        "B-4,ada@example.test,10,EUR,lost,,\n"
        "B-5,ada@example.test,abc,EUR,,,\n"
        "B-6,,10,EUR,,,\n"
        "B-7,ada@example.test,10,EUR,,,12\n"
        "B-8,ada@example.test,10,EUR,,,\n"
    )
    report = import_orders_csv(data, actor=ADMIN)
    db.session.commit()
    assert report.created == 1
    assert [(e.row, e.field) for e in report.errors] == [
        (2, "currency"),
        (3, "total"),
        (4, "placed_at"),
        (5, "status"),
        (6, "total"),
        (7, "email"),
        (8, "refunded_total"),
    ]
    assert "XXY" in report.errors[0].message
    assert count(Order) == 1
    # B-7's contact was created inside the row's savepoint, so it went with the row.
    assert count(Contact) == 1


def test_orders_import_without_a_total_column_is_refused(app):
    report = import_orders_csv("external_id,email,currency\nX,a@b.test,EUR\n", actor=ADMIN)
    assert report.errors == [RowError(1, "missing column 'total'", "total")]


# ------------------------------------------------------------------ the API


@pytest.fixture
def api_headers(app):
    _, secret = create_api_token(actor=ADMIN, name="import", scopes=["all"])
    db.session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_api_imports_contacts_from_a_csv_body(client, api_headers):
    response = client.post(
        "/api/v1/imports/contacts",
        data=b"name,email\nAda,ada@example.test\nBad,nope\n",
        headers={**api_headers, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200
    assert response.get_json() == {
        "created": 1,
        "updated": 0,
        "skipped": 0,
        "errors": [{"row": 3, "message": "'nope' is not an email address", "field": "email"}],
    }


def test_api_imports_orders_from_a_multipart_file(client, api_headers):
    response = client.post(
        "/api/v1/imports/orders",
        data={"file": (io.BytesIO(ORDERS.encode("utf-8-sig")), "orders.csv", "text/csv")},
        headers=api_headers,
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["created"] == 3


def test_api_import_refuses_json_bodies(client, api_headers):
    response = client.post("/api/v1/imports/orders", json={"a": 1}, headers=api_headers)
    assert response.status_code == 415
