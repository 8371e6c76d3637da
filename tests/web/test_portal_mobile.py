"""The customer portal on a phone (390x844), in English and in Arabic (right to left)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.web.conftest import LiveServer, serve

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def portal_server() -> Iterator[LiveServer]:
    with serve(
        _seed, channel="portal", config={"RAPPORT_SHOP_URL": "https://shop.example/"}
    ) as server:
        yield server


def _seed() -> dict[str, Any]:
    from automation.incentives.operations import issue_goodwill_voucher
    from automation.loyalty.operations import award_points
    from helpdesk.actors import Actor
    from helpdesk.extensions import db
    from helpdesk.ingest import ingest_message
    from helpdesk.models import Role
    from helpdesk.operations.messages import add_note, reply_to_ticket
    from helpdesk.operations.users import create_user
    from tests.factories import inbound

    system = Actor.system("seed")
    agent = create_user(
        actor=system,
        email="sam@example.com",
        name="Sam Support",
        password="password123",
        role=Role.ADMIN,
    )
    first = ingest_message(
        inbound(
            "Hello, my kettle arrived with a cracked lid. Order 1042.",
            sender="noor@example.net",
            name="نور الهدى",
            subject="Kettle arrived damaged",
        )
    ).ticket
    add_note(first, actor=Actor.for_user(agent), author=agent, body="Courier claim opened")
    reply_to_ticket(
        first,
        actor=Actor.for_user(agent),
        author=agent,
        body="Sorry about that! A new lid ships today; you will have it by Friday.",
    )
    ingest_message(
        inbound(
            "هل يمكنني تغيير عنوان التوصيل؟",
            sender="noor@example.net",
            name="نور الهدى",
            subject="تغيير عنوان التوصيل",
        )
    )
    contact = first.contact
    issue_goodwill_voucher(contact, actor=Actor.for_user(agent), amount=Decimal("15"))
    award_points(contact, 320, actor=system, reason="welcome", key="seed-points")
    db.session.commit()
    return {"contact_id": contact.id, "ticket_id": first.id}


def _sign_in(context: Any, server: LiveServer, lang: str) -> Any:
    from helpdesk.portal.auth import mint_link_token

    with server.app.app_context():
        token = mint_link_token(server.seed["contact_id"], uuid.uuid4().hex)
    page = context.new_page()
    page.goto(f"{server.url}/portal/sign-in/{token}?lang={lang}")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{server.url}/portal/tickets")
    return page


def _no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways ({width}px)"


@pytest.mark.parametrize(("lang", "direction"), [("en", "ltr"), ("ar", "rtl")])
def test_the_portal_fits_a_phone_in_both_directions(
    portal_server, browser, screenshots, lang, direction
):
    from playwright.sync_api import expect

    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    try:
        start = context.new_page()
        start.goto(f"{portal_server.url}/portal/?lang={lang}")
        assert start.locator("html").get_attribute("dir") == direction
        _no_sideways_scroll(start)
        start.screenshot(path=str(screenshots / f"portal_sign_in_{lang}.png"))

        page = _sign_in(context, portal_server, lang)
        assert page.locator("html").get_attribute("dir") == direction
        expect(page.locator(".pt-ticket")).to_have_count(2)
        _no_sideways_scroll(page)
        sign_out = page.locator(".pt-signout button").bounding_box()
        assert sign_out["x"] >= 0 and sign_out["x"] + sign_out["width"] <= PHONE["width"]
        page.screenshot(path=str(screenshots / f"portal_tickets_{lang}.png"))

        page.goto(f"{portal_server.url}/portal/tickets/{portal_server.seed['ticket_id']}")
        expect(page.locator(".pt-msg")).to_have_count(2)
        expect(page.locator("body")).not_to_contain_text("Courier claim")
        mine = page.locator(".pt-msg-mine").bounding_box()
        theirs = page.locator(".pt-msg-theirs").bounding_box()
        # The customer's own messages sit at the inline end: right in English, left in Arabic.
        if direction == "ltr":
            assert mine["x"] > theirs["x"]
        else:
            assert mine["x"] < theirs["x"]
        _no_sideways_scroll(page)
        page.screenshot(path=str(screenshots / f"portal_ticket_{lang}.png"), full_page=True)

        page.goto(f"{portal_server.url}/portal/rewards")
        expect(page.locator("#points-available")).to_have_text("320")
        _no_sideways_scroll(page)
        page.screenshot(path=str(screenshots / f"portal_rewards_{lang}.png"), full_page=True)
    finally:
        context.close()
