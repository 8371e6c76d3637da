"""Orders: record_order and POST /api/v1/orders, idempotent by the shop's order id."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from helpdesk import events
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import AuditEvent, Contact, Order, OrderStatus
from helpdesk.operations.orders import OrderError, record_order
from helpdesk.operations.users import create_api_token

SHOP = Actor.system("shop")


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def record(external_id="ORD-1", total="100.00", currency="EUR", **kw):
    kw.setdefault("email", "ada@example.test")
    return record_order(
        actor=SHOP, external_id=external_id, total=Decimal(total), currency=currency, **kw
    )


@pytest.fixture
def recorded():
    seen: list[events.OrderRecorded] = []

    def listener(sender, event, **_):
        seen.append(event)

    events.order_recorded.connect(listener)
    yield seen
    events.order_recorded.disconnect(listener)


@pytest.fixture
def api(client):
    _, secret = create_api_token(actor=SHOP, name="shop", scopes=["orders:read", "orders:write"])
    db.session.commit()

    def call(method: str, path: str, **kw):
        headers = {"Authorization": f"Bearer {secret}"}
        return getattr(client, method)(f"/api/v1{path}", headers=headers, **kw)

    return call


# ------------------------------------------------------------------ the operation


def test_first_record_creates_the_order_and_its_contact(app, recorded):
    result = record(name="Ada Lovelace")
    db.session.commit()
    assert result.created and result.changed
    assert result.order.status is OrderStatus.PAID
    assert result.order.contact.email == "ada@example.test"
    assert result.order.contact.name == "Ada Lovelace"
    assert [(e.status, e.previous_status) for e in recorded] == [("paid", None)]


def test_order_is_audited_on_the_contacts_timeline(app):
    result = record()
    db.session.commit()
    entry = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "order.created")).one()
    assert entry.contact_id == result.order.contact_id
    assert entry.data["external_id"] == "ORD-1"


def test_recording_the_same_order_again_changes_nothing_and_sends_nothing(app, recorded):
    record()
    db.session.commit()
    again = record()
    db.session.commit()
    assert not again.created and not again.changed
    assert count(Order) == 1 and len(recorded) == 1


def test_existing_contact_is_found_by_phone(app, make_contact):
    contact = make_contact(email=False, phone="+36 1 234 5678")
    result = record(email=None, phone="+3612345678")
    assert result.order.contact_id == contact.id


def test_partial_refund_makes_the_order_partially_refunded(app, recorded):
    record()
    db.session.commit()
    result = record(refunded_total=Decimal("25.00"))
    db.session.commit()
    assert result.order.status is OrderStatus.PARTIALLY_REFUNDED
    assert result.order.net_total == Decimal("75.00")
    assert (recorded[-1].status, recorded[-1].previous_status) == ("partially_refunded", "paid")


def test_full_refund_makes_the_order_refunded(app):
    record()
    result = record(refunded_total=Decimal("100.00"))
    assert result.order.status is OrderStatus.REFUNDED


def test_status_refunded_without_an_amount_refunds_everything(app):
    record()
    result = record(status=OrderStatus.REFUNDED)
    assert result.order.refunded_total == Decimal("100.00")


def test_status_change_is_recorded(app, recorded):
    record(status=OrderStatus.PAID)
    result = record(status=OrderStatus.FULFILLED)
    db.session.commit()
    assert result.changed and result.order.status is OrderStatus.FULFILLED
    update = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "order.updated")
    ).one()
    assert update.data["changes"]["status"] == ["paid", "fulfilled"]


@pytest.mark.parametrize(
    "kw,field",
    [
        ({"currency": "XYZ"}, "currency"),
        ({"total": "-1"}, "total"),
        ({"total": "1.234"}, "total"),
        ({"refunded_total": Decimal("101")}, "refunded_total"),
        ({"email": "nope"}, "email"),
        ({"email": None}, "email"),
        ({"external_id": " "}, "external_id"),
    ],
)
def test_invalid_orders_are_refused_naming_the_field(app, kw, field):
    with pytest.raises(OrderError) as caught:
        record(**kw)
    assert caught.value.field == field
    assert count(Order) == 0


def test_currency_of_a_recorded_order_cannot_change(app):
    record()
    with pytest.raises(OrderError) as caught:
        record(currency="HUF")
    assert caught.value.status == 409


def test_concurrent_records_of_one_order_store_it_once(app):
    results: list[bool] = []
    errors: list[Exception] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        with app.app_context():
            try:
                barrier.wait()
                results.append(record("RACE-1", email="race@example.test").created)
                db.session.commit()
            except Exception as exc:  # pragma: no cover - shown on failure
                errors.append(exc)
                db.session.rollback()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert count(Order) == 1
    assert count(Contact) == 1
    assert results.count(True) == 1


# ------------------------------------------------------------------ the API


def test_post_order_creates_then_updates_idempotently(api):
    body = {
        "external_id": "SHOP-7",
        "contact": {"email": "ada@example.test", "name": "Ada"},
        "total": "59.90",
        "currency": "eur",
        "placed_at": "2024-05-01T10:00:00Z",
        "items": [{"sku": "TEA-1", "qty": 2}],
    }
    created = api("post", "/orders", json=body)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["currency"] == "EUR"
    assert created.get_json()["total"] == "59.90"
    same = api("post", "/orders", json=body)
    assert same.status_code == 200 and same.get_json()["changed"] is False
    refunded = api("post", "/orders", json={**body, "refunded_total": 9.9})
    assert refunded.get_json()["status"] == "partially_refunded"
    assert refunded.get_json()["net_total"] == "50.00"
    assert refunded.get_json()["id"] == created.get_json()["id"]


def test_post_order_with_a_bad_currency_is_a_422_naming_currency(api):
    response = api(
        "post",
        "/orders",
        json={"external_id": "X", "contact": {"email": "a@b.test"}, "total": 1, "currency": "EURO"},
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "currency"


def test_post_order_with_a_negative_total_is_a_422_naming_total(api):
    response = api(
        "post",
        "/orders",
        json={"external_id": "X", "contact": {"email": "a@b.test"}, "total": -5, "currency": "EUR"},
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "total"


def test_post_order_with_a_bad_date_is_a_422_naming_placed_at(api):
    response = api(
        "post",
        "/orders",
        json={
            "external_id": "X",
            "contact": {"email": "a@b.test"},
            "total": 5,
            "currency": "EUR",
            "placed_at": "yesterday",
        },
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "placed_at"


def test_changing_the_currency_through_the_api_is_a_409(api):
    body = {"external_id": "C", "contact": {"email": "a@b.test"}, "total": 5, "currency": "EUR"}
    api("post", "/orders", json=body)
    response = api("post", "/orders", json={**body, "currency": "USD"})
    assert response.status_code == 409


def test_orders_list_and_detail(api, make_contact):
    contact = make_contact()
    for n in range(3):
        record(f"L{n}", contact=contact)
    record("OTHER", email="other@example.test")
    db.session.commit()
    page = api("get", f"/orders?contact_id={contact.id}&limit=2").get_json()
    rest = api("get", f"/orders?contact_id={contact.id}&cursor={page['next_cursor']}").get_json()
    ids = [o["external_id"] for o in page["data"] + rest["data"]]
    assert sorted(ids) == ["L0", "L1", "L2"]
    one = page["data"][0]
    assert api("get", f"/orders/{one['id']}").get_json()["external_id"] == one["external_id"]


def test_concurrent_api_posts_of_one_order_yield_one_order(app):
    body = {
        "external_id": "API-RACE",
        "contact": {"email": "r@example.test"},
        "total": 10,
        "currency": "EUR",
    }
    codes: list[int] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        with app.app_context():
            client = app.test_client()
            barrier.wait()
            codes.append(client.post("/api/v1/orders", json=body, headers=headers).status_code)
            db.session.remove()

    _, secret = create_api_token(actor=SHOP, name="race", scopes=["orders:write"])
    db.session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 200, 200, 201]
    assert count(Order) == 1
