"""Push issued vouchers into the shops where they are redeemed, as real discount codes.

Shopify: GraphQL Admin API, ``discountCodeBasicCreate`` and
``discountCodeFreeShippingCreate`` (https://shopify.dev/docs/api/admin-graphql/latest/mutations/discountCodeBasicCreate);
we supply the code string. WooCommerce: REST ``POST /wp-json/wc/v3/coupons``
(https://woocommerce.github.io/woocommerce-rest-api-docs/#create-a-coupon).

Each adapter reads its base URL from the config, so tests point it at a local
recorder. The job runs after commit, is retried, and is idempotent: a shop that
has the code already counts as done, and done shops are remembered on the voucher.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from flask import current_app
from sqlalchemy import select

from automation.incentives.events import VoucherIssued, signal
from automation.incentives.models import Voucher
from automation.incentives.policy import RewardKind
from helpdesk import jobs
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.operations import audit

log = logging.getLogger(__name__)
SHOPS = Actor.system("shop sync")
TIMEOUT = 10


class ShopError(Exception):
    """The shop refused or could not be reached; the job retries."""


@dataclass(frozen=True, slots=True)
class ShopDiscount:
    """What a shop needs to know about a voucher, as plain values."""

    code: str
    title: str
    kind: RewardKind
    value: Decimal
    currency: str | None
    minimum_order: Decimal | None
    starts_at: str
    ends_at: str | None
    email: str | None
    options: dict[str, Any]


class ShopAdapter(Protocol):
    name: str

    def create_discount(self, discount: ShopDiscount) -> str:
        """Create the code in the shop; return the shop's id for it."""


def _post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310  (URL from configuration)
        url, data=data, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read() or b"null")
        except ValueError:
            payload = None
        return exc.code, payload
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise ShopError(f"{url}: {exc}") from exc


BASIC_CREATE = """mutation discountCodeBasicCreate($basicCodeDiscount: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $basicCodeDiscount) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}"""

FREE_SHIPPING_CREATE = """mutation discountCodeFreeShippingCreate(
  $freeShippingCodeDiscount: DiscountCodeFreeShippingInput!
) {
  discountCodeFreeShippingCreate(freeShippingCodeDiscount: $freeShippingCodeDiscount) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}"""


class ShopifyAdapter:
    """Shopify Admin GraphQL; ``base_url`` is ``https://{shop}.myshopify.com``."""

    name = "shopify"

    def __init__(self, base_url: str, token: str, api_version: str = "2024-10") -> None:
        self.url = f"{base_url.rstrip('/')}/admin/api/{api_version}/graphql.json"
        self.token = token

    def _common(self, d: ShopDiscount) -> dict[str, Any]:
        common: dict[str, Any] = {
            "title": d.title,
            "code": d.code,
            "startsAt": d.starts_at,
            "endsAt": d.ends_at,
            "usageLimit": 1,
            "appliesOncePerCustomer": True,
            "customerSelection": {"all": True},
        }
        if d.minimum_order is not None:
            common["minimumRequirement"] = {
                "subtotal": {"greaterThanOrEqualToSubtotal": str(d.minimum_order)}
            }
        return common

    def mutation(self, d: ShopDiscount) -> tuple[str, str, dict[str, Any]]:
        """The GraphQL document, its root field and variables for ``d``."""
        common = self._common(d)
        if d.kind is RewardKind.FREE_SHIPPING:
            common["destination"] = {"all": True}
            return (
                FREE_SHIPPING_CREATE,
                "discountCodeFreeShippingCreate",
                {"freeShippingCodeDiscount": common},
            )
        items: dict[str, Any] = {"all": True}
        if d.kind is RewardKind.PERCENTAGE:
            value: dict[str, Any] = {"percentage": float(d.value / 100)}
        elif d.kind is RewardKind.FREE_ITEM:
            product = d.options.get("shopify_product_id")
            if not product:
                raise ShopError("a free-item voucher needs options.shopify_product_id")
            value = {"percentage": 1.0}
            items = {"products": {"productsToAdd": [product]}}
        else:  # fixed amount and store credit
            value = {"discountAmount": {"amount": str(d.value), "appliesOnEachItem": False}}
        common["customerGets"] = {"value": value, "items": items}
        return BASIC_CREATE, "discountCodeBasicCreate", {"basicCodeDiscount": common}

    def create_discount(self, discount: ShopDiscount) -> str:
        query, root, variables = self.mutation(discount)
        status, payload = _post(
            self.url,
            {"query": query, "variables": variables},
            {"X-Shopify-Access-Token": self.token},
        )
        if status >= 400 or not isinstance(payload, dict):
            raise ShopError(f"Shopify answered {status}")
        if payload.get("errors"):
            raise ShopError(f"Shopify: {payload['errors']}")
        result = (payload.get("data") or {}).get(root) or {}
        errors = result.get("userErrors") or []
        if errors:
            # A retry after a crash between the call and our commit finds the code taken.
            if any(
                "unique" in (e.get("message") or "").lower() or e.get("code") == "TAKEN"
                for e in errors
            ):
                return "existing"
            raise ShopError(f"Shopify refused the code: {errors}")
        node = result.get("codeDiscountNode") or {}
        return str(node.get("id") or "")


class WooCommerceAdapter:
    """WooCommerce REST v3 with a consumer key and secret (HTTP basic auth over TLS)."""

    name = "woocommerce"

    def __init__(self, base_url: str, key: str, secret: str) -> None:
        self.url = f"{base_url.rstrip('/')}/wp-json/wc/v3/coupons"
        self.auth = base64.b64encode(f"{key}:{secret}".encode()).decode()

    def body(self, d: ShopDiscount) -> dict[str, Any]:
        """The coupon as WooCommerce wants it."""
        body: dict[str, Any] = {
            "code": d.code,
            "description": d.title,
            "usage_limit": 1,
            "individual_use": True,
        }
        if d.kind is RewardKind.PERCENTAGE:
            body.update(discount_type="percent", amount=f"{d.value:.2f}")
        elif d.kind is RewardKind.FREE_SHIPPING:
            body.update(discount_type="fixed_cart", amount="0", free_shipping=True)
        elif d.kind is RewardKind.FREE_ITEM:
            product = d.options.get("woocommerce_product_id")
            if not product:
                raise ShopError("a free-item voucher needs options.woocommerce_product_id")
            body.update(
                discount_type="percent",
                amount="100",
                product_ids=[int(product)],
                limit_usage_to_x_items=1,
            )
        else:
            body.update(discount_type="fixed_cart", amount=f"{d.value:.2f}")
        if d.ends_at:
            body["date_expires_gmt"] = d.ends_at[:19]
        if d.minimum_order is not None:
            body["minimum_amount"] = f"{d.minimum_order:.2f}"
        if d.email:
            body["email_restrictions"] = [d.email]
        return body

    def create_discount(self, discount: ShopDiscount) -> str:
        status, payload = _post(
            self.url, self.body(discount), {"Authorization": f"Basic {self.auth}"}
        )
        if (
            status == 400
            and isinstance(payload, dict)
            and payload.get("code") == ("woocommerce_rest_coupon_code_already_exists")
        ):
            return "existing"
        if status >= 300 or not isinstance(payload, dict):
            raise ShopError(f"WooCommerce answered {status}: {payload}")
        return str(payload.get("id", ""))


def configured_adapters() -> list[ShopAdapter]:
    """The shops this installation pushes codes to (none unless configured)."""
    config = current_app.config
    adapters: list[ShopAdapter] = []
    if config.get("RAPPORT_SHOPIFY_URL"):
        adapters.append(
            ShopifyAdapter(
                config["RAPPORT_SHOPIFY_URL"],
                config.get("RAPPORT_SHOPIFY_TOKEN") or "",
                config.get("RAPPORT_SHOPIFY_API_VERSION") or "2024-10",
            )
        )
    if config.get("RAPPORT_WOOCOMMERCE_URL"):
        adapters.append(
            WooCommerceAdapter(
                config["RAPPORT_WOOCOMMERCE_URL"],
                config.get("RAPPORT_WOOCOMMERCE_KEY") or "",
                config.get("RAPPORT_WOOCOMMERCE_SECRET") or "",
            )
        )
    return adapters


def shop_discount(voucher: Voucher) -> ShopDiscount:
    contact = voucher.grant.contact_id if voucher.grant else None
    email = None
    if voucher.is_holder_only and contact is not None:
        from helpdesk.models import Contact

        owner = db.session.get(Contact, contact)
        email = owner.email if owner else None
    return ShopDiscount(
        code=voucher.display_code,
        title=f"{voucher.policy.name} #{voucher.id}",
        kind=voucher.kind,
        value=Decimal(voucher.value),
        currency=voucher.currency,
        minimum_order=voucher.minimum_order,
        starts_at=(voucher.issued_at or voucher.created_at).isoformat(),
        ends_at=voucher.expires_at.isoformat() if voucher.expires_at else None,
        email=email,
        options=dict(voucher.policy.options or {}),
    )


@jobs.job(retries=5, retry_delay=60)
def push_voucher(voucher_id: int) -> dict[str, Any]:
    """Create the voucher's code in every configured shop that does not have it yet."""
    adapters = configured_adapters()
    voucher = db.session.get(Voucher, voucher_id)
    if voucher is None or not adapters or voucher.kind is RewardKind.LOYALTY_POINTS:
        return {}
    discount = shop_discount(voucher)
    refs = dict(voucher.shop_refs or {})
    failures = []
    for adapter in adapters:
        if adapter.name in refs:
            continue
        try:
            ref = adapter.create_discount(discount)
        except ShopError as exc:
            log.warning("pushing voucher %s to %s failed: %s", voucher_id, adapter.name, exc)
            failures.append(adapter.name)
            continue
        # Lock the row and merge, so two shops finishing at once both stay recorded.
        row = db.session.execute(
            select(Voucher).where(Voucher.id == voucher_id).with_for_update()
        ).scalar_one()
        row.shop_refs = refs = {**(row.shop_refs or {}), adapter.name: ref}
        audit.record(
            "voucher.pushed_to_shop",
            actor=SHOPS,
            contact_id=row.contact_id,
            ticket_id=row.ticket_id,
            voucher_id=row.id,
            shop=adapter.name,
            ref=ref,
        )
        db.session.commit()
    if failures:
        raise ShopError(f"voucher {voucher_id} not pushed to {', '.join(failures)}; retrying")
    return refs


def _on_voucher_issued(sender: object, event: VoucherIssued, **_: object) -> None:
    if configured_adapters():
        push_voucher(event.voucher_id)


def connect() -> None:
    signal(VoucherIssued).connect(_on_voucher_issued)
