"""The shop API (/api/v1/shop) and the Shopify / WooCommerce adapters against a local recorder."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from automation.incentives.models import Voucher, VoucherRedemption, VoucherStatus
from automation.incentives.operations import create_policy, grant_incentive
from automation.incentives.policy import RewardKind
from automation.loyalty.operations import award_points, referral_code_for
from automation.shop.adapters import ShopError, push_voucher
from automation.shop.api import SHOP_SCOPES
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import AuditEvent
from helpdesk.operations import users

RULE = Actor.automation(1, "rule")


@pytest.fixture
def token(app):
    def make(*scopes):
        _, secret = users.create_api_token(
            actor=Actor.system("t"), name="shop", scopes=list(scopes or SHOP_SCOPES)
        )
        db.session.commit()
        return {"Authorization": f"Bearer {secret}"}

    return make


def voucher_for(contact, key="v", **kw):
    create_policy(
        actor=Actor.system("t"),
        key=key,
        name="Sorry",
        kind=kw.pop("kind", RewardKind.FIXED),
        value=kw.pop("value", Decimal("10")),
        currency=kw.pop("currency", "EUR"),
        **kw,
    )
    voucher = grant_incentive(key, contact=contact, actor=RULE, reason="test").voucher
    db.session.commit()
    return voucher


def test_validate_answers_with_the_discount(client, token, make_contact):
    contact = make_contact()
    voucher = voucher_for(contact, minimum_order=Decimal("20"))
    body = {"code": voucher.display_code.lower(), "contact_id": contact.id, "cart_total": "35.00"}
    response = client.post("/api/v1/shop/vouchers/validate", json=body, headers=token())
    assert response.status_code == 200, response.json
    assert response.json["valid"] is True and response.json["discount"] == "10.00"


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("unknown", 404, "unknown"),
        ("stranger", 403, "not_yours"),
        ("small", 422, "below_minimum"),
    ],
)
def test_validate_refusals_carry_a_reason(client, token, make_contact, case, status, reason):
    owner, stranger = make_contact(), make_contact(name="Mallory")
    voucher = voucher_for(owner, minimum_order=Decimal("20"))
    body = {"code": voucher.code, "contact_id": owner.id, "cart_total": "35"}
    if case == "unknown":
        body["code"] = "AAAA-BBBB-CCCC"
    elif case == "stranger":
        body["contact_id"] = stranger.id
    else:
        body["cart_total"] = "5"
    response = client.post("/api/v1/shop/vouchers/validate", json=body, headers=token())
    assert response.status_code == status
    assert response.json["error"]["code"] == reason == response.json["error"]["reason"]


def test_missing_scope_is_forbidden(client, token, make_contact):
    headers = token("loyalty:read")
    response = client.post(
        "/api/v1/shop/vouchers/redeem", json={"code": "x", "order_total": "1"}, headers=headers
    )
    assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"
    assert client.post("/api/v1/shop/vouchers/validate", json={}).status_code == 401


@pytest.mark.parametrize("app_config", [{"RAPPORT_VOUCHER_GUESS_LIMIT": 3}])
def test_guessing_locks_the_client_out(client, token, make_contact):
    contact = make_contact()
    voucher = voucher_for(contact)
    headers = token()
    for i in range(3):
        body = {"code": f"AAAA-BBBB-CCC{i}", "cart_total": "10", "customer_ip": "203.0.113.9"}
        assert (
            client.post("/api/v1/shop/vouchers/validate", json=body, headers=headers).status_code
            == 404
        )
    good = {
        "code": voucher.code,
        "contact_id": contact.id,
        "cart_total": "10",
        "customer_ip": "203.0.113.9",
    }
    locked = client.post("/api/v1/shop/vouchers/validate", json=good, headers=headers)
    assert locked.status_code == 429 and locked.json["error"]["code"] == "too_many_guesses"
    assert 0 < int(locked.headers["Retry-After"]) <= 600
    other_shopper = {**good, "customer_ip": "198.51.100.7"}
    assert (
        client.post(
            "/api/v1/shop/vouchers/validate", json=other_shopper, headers=headers
        ).status_code
        == 200
    )


def test_redeem_and_reverse_through_the_api(client, token, make_contact):
    contact = make_contact()
    voucher = voucher_for(contact)
    headers = token()
    body = {"code": voucher.code, "email": contact.email, "order_total": "50", "order_id": "#1001"}
    first = client.post("/api/v1/shop/vouchers/redeem", json=body, headers=headers)
    assert first.status_code == 201, first.json
    assert first.json["discount"] == "10.00" and first.json["voucher"]["status"] == "redeemed"
    retry = client.post("/api/v1/shop/vouchers/redeem", json=body, headers=headers)
    assert retry.status_code == 200 and retry.json["id"] == first.json["id"]
    other = client.post(
        "/api/v1/shop/vouchers/redeem", json={**body, "order_id": "#1002"}, headers=headers
    )
    assert other.status_code == 409 and other.json["error"]["code"] == "already_used"
    reversed_ = client.post(
        "/api/v1/shop/redemptions/reverse", json={"order_id": "#1001"}, headers=headers
    )
    assert reversed_.status_code == 200
    assert reversed_.json["data"][0]["outcome"] == "restored"
    db.session.expire_all()
    assert db.session.get(Voucher, voucher.id).status is VoucherStatus.ISSUED
    by_id = client.post(f"/api/v1/shop/redemptions/{first.json['id']}/reverse", headers=headers)
    assert by_id.status_code == 200 and by_id.json["reversed"] is True


def test_single_use_code_redeemed_by_50_concurrent_requests_succeeds_once(app, token, make_contact):
    contact = make_contact()
    voucher = voucher_for(contact, is_holder_only=False)
    headers = token()
    code = voucher.code
    db.session.commit()
    barrier = threading.Barrier(50)
    statuses = []

    def attempt(i):
        client = app.test_client()
        barrier.wait()
        body = {"code": code, "order_total": "30", "order_id": f"order-{i}"}
        response = client.post("/api/v1/shop/vouchers/redeem", json=body, headers=headers)
        statuses.append((response.status_code, (response.json or {}).get("error", {}).get("code")))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses, key=str) == sorted(
        [(201, None)] + [(409, "already_used")] * 49, key=str
    )
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(VoucherRedemption)) == 1


def test_contact_rewards_show_points_tier_and_vouchers(client, token, make_contact):
    contact = make_contact()
    voucher_for(contact)
    award_points(contact, 700, actor=RULE, reason="x", key="k")
    db.session.commit()
    response = client.get(f"/api/v1/shop/contacts/{contact.id}", headers=token("loyalty:read"))
    assert response.status_code == 200
    assert response.json["points"] == {"available": 700, "pending": 0}
    assert response.json["tier"]["key"] == "silver"
    assert [v["status"] for v in response.json["vouchers"]] == ["issued"]


def test_referral_through_the_api_is_blocked_for_self(client, token, make_contact):
    contact = make_contact()
    code = referral_code_for(contact, actor=RULE)
    db.session.commit()
    response = client.post(
        "/api/v1/shop/referrals",
        json={"code": code.code, "contact_id": contact.id},
        headers=token(),
    )
    assert response.status_code == 201 and response.json["block_reason"] == "self_referral"


# ------------------------------------------------------------------ adapters


class Recorder:
    """A local HTTP server that records requests and answers with canned JSON."""

    def __init__(self):
        self.requests = []
        self.answers = []  # (status, body) queue; default answers by path
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                recorder.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                status, answer = (
                    recorder.answers.pop(0)
                    if recorder.answers
                    else recorder.default(self.path, body)
                )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def default(self, path, body):
        if path.endswith("/graphql.json"):
            root = (
                "discountCodeFreeShippingCreate"
                if "FreeShipping" in body["query"]
                else "discountCodeBasicCreate"
            )
            return 200, {
                "data": {
                    root: {
                        "codeDiscountNode": {"id": "gid://shopify/DiscountCodeNode/1"},
                        "userErrors": [],
                    }
                }
            }
        return 201, {"id": 77, "code": body.get("code")}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def shop_server():
    server = Recorder()
    yield server
    server.stop()


@pytest.fixture
def shops(app, shop_server):
    app.config.update(
        RAPPORT_SHOPIFY_URL=shop_server.url,
        RAPPORT_SHOPIFY_TOKEN="shpat_test",
        RAPPORT_WOOCOMMERCE_URL=shop_server.url,
        RAPPORT_WOOCOMMERCE_KEY="ck_test",
        RAPPORT_WOOCOMMERCE_SECRET="cs_test",
    )
    return shop_server


def test_issued_voucher_is_pushed_to_shopify_and_woocommerce(app, shops, make_contact):
    contact = make_contact(email="ada@example.test")
    voucher = voucher_for(
        contact,
        kind=RewardKind.PERCENTAGE,
        value=Decimal("15"),
        currency=None,
        valid_days=30,
        minimum_order=Decimal("25"),
    )
    graphql, rest = shops.requests
    assert graphql["path"] == "/admin/api/2024-10/graphql.json"
    assert graphql["headers"]["X-Shopify-Access-Token"] == "shpat_test"
    assert "discountCodeBasicCreate(" in graphql["body"]["query"]
    sent = graphql["body"]["variables"]["basicCodeDiscount"]
    assert sent["code"] == voucher.display_code
    assert sent["customerGets"]["value"] == {"percentage": 0.15}
    assert sent["usageLimit"] == 1 and sent["endsAt"]
    assert sent["minimumRequirement"] == {"subtotal": {"greaterThanOrEqualToSubtotal": "25.00"}}
    assert rest["path"] == "/wp-json/wc/v3/coupons"
    assert rest["headers"]["Authorization"].startswith("Basic ")
    assert rest["body"]["code"] == voucher.display_code
    assert rest["body"]["discount_type"] == "percent" and rest["body"]["amount"] == "15.00"
    assert rest["body"]["email_restrictions"] == ["ada@example.test"]
    assert rest["body"]["usage_limit"] == 1 and rest["body"]["minimum_amount"] == "25.00"
    db.session.expire_all()
    refs = db.session.get(Voucher, voucher.id).shop_refs
    assert refs == {"shopify": "gid://shopify/DiscountCodeNode/1", "woocommerce": "77"}
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "voucher.pushed_to_shop")
        )
        == 2
    )


def test_free_shipping_uses_its_own_mutation(app, shops, make_contact):
    voucher_for(make_contact(), kind=RewardKind.FREE_SHIPPING, value=Decimal("0"), currency=None)
    graphql, rest = shops.requests
    assert "discountCodeFreeShippingCreate(" in graphql["body"]["query"]
    assert graphql["body"]["variables"]["freeShippingCodeDiscount"]["destination"] == {"all": True}
    assert rest["body"]["free_shipping"] is True


def test_fixed_amount_voucher_body(app, shops, make_contact):
    voucher_for(make_contact(), value=Decimal("12.50"))
    graphql, rest = shops.requests
    value = graphql["body"]["variables"]["basicCodeDiscount"]["customerGets"]["value"]
    assert value == {"discountAmount": {"amount": "12.50", "appliesOnEachItem": False}}
    assert (rest["body"]["discount_type"], rest["body"]["amount"]) == ("fixed_cart", "12.50")


def test_a_failing_shop_is_retried_and_a_known_code_counts_as_done(app, shops, make_contact):
    create_policy(
        actor=Actor.system("t"),
        key="big",
        name="Big",
        kind=RewardKind.FIXED,
        value=Decimal("50"),
        currency="EUR",
        approval_threshold=Decimal("10"),
    )
    result = grant_incentive("big", contact=make_contact(), actor=RULE, reason="x")
    db.session.commit()
    assert shops.requests == []  # nothing leaves before approval
    shops.answers = [
        (503, {"errors": "busy"}),
        (400, {"code": "woocommerce_rest_coupon_code_already_exists", "message": "exists"}),
    ]
    voucher_id = result.voucher.id
    db.session.commit()  # the job's session needs SQLite's write lock
    with pytest.raises(ShopError):
        push_voucher.call_local(voucher_id)
    db.session.expire_all()
    assert set(db.session.get(Voucher, voucher_id).shop_refs) == {"woocommerce"}
    db.session.commit()
    push_voucher.call_local(voucher_id)
    db.session.expire_all()
    assert set(db.session.get(Voucher, voucher_id).shop_refs) == {"shopify", "woocommerce"}
    # The retry went only to the shop that had failed.
    assert [r["path"] for r in shops.requests][2:] == ["/admin/api/2024-10/graphql.json"]
    db.session.commit()
    push_voucher.call_local(voucher_id)
    assert len(shops.requests) == 3  # nothing is pushed twice
