"""Two agents on one ticket: a reply and the "viewing" marker appear live, in LTR and RTL."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def sign_in(context, server, email):
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", server.seed["password"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")
    return page


def open_ticket(page, server, query=""):
    page.goto(f"{server.url}/tickets/{server.seed['ticket_id']}{query}")
    page.wait_for_selector("html[data-live=connected]", timeout=10_000)


def test_reply_and_presence_appear_live_for_the_other_agent(live_server, browser, screenshots):
    from playwright.sync_api import expect

    contexts = [browser.new_context(viewport={"width": 1440, "height": 900}) for _ in range(2)]
    try:
        alice = sign_in(contexts[0], live_server, live_server.seed["alice"])
        bob = sign_in(contexts[1], live_server, live_server.seed["bob"])
        open_ticket(bob, live_server)
        open_ticket(alice, live_server)

        expect(bob.locator("#presence")).to_have_text("Alice Agent is viewing", timeout=10_000)
        expect(alice.locator("#presence")).to_have_text("Bob Builder is viewing", timeout=10_000)

        alice.locator("#reply-body").press_sequentially("Sorry, Ada", delay=5)
        expect(bob.locator("#typing")).to_contain_text("Alice Agent is typing", timeout=10_000)
        alice.locator("#reply-body").fill("Sorry, Ada: a new kettle ships today.")
        alice.locator("#panel-reply button.primary").click()
        alice.wait_for_load_state()

        reply = bob.locator("#thread .msg-outbound", has_text="a new kettle ships today")
        expect(reply).to_be_visible(timeout=10_000)
        expect(reply.locator(".delivery")).to_have_text("Sent", timeout=10_000)
        expect(alice.locator("#thread .msg-outbound")).to_have_count(1)
        # The list refreshes in place: the ticket is open now and no longer unread.
        row = bob.locator(f'#ticket-list li.row[data-ticket-id="{live_server.seed["ticket_id"]}"]')
        expect(row.locator(".badge.status")).to_have_text("Open", timeout=10_000)
        bob.screenshot(path=str(screenshots / "live_reply_ltr.png"))

        bob.keyboard.press("?")
        expect(bob.locator("#shortcuts")).to_be_visible()
        bob.screenshot(path=str(screenshots / "shortcuts_ltr.png"))
        bob.keyboard.press("Escape")

        open_ticket(bob, live_server, "?lang=ar")
        assert bob.locator("html").get_attribute("dir") == "rtl"
        # The marker is translated; the name stays as the agent wrote it.
        expect(bob.locator("#presence")).to_have_text("يشاهدها Alice Agent", timeout=10_000)
        expect(bob.locator("#tab-reply")).not_to_contain_text("Reply")
        bob.screenshot(path=str(screenshots / "live_reply_rtl.png"))
    finally:
        for context in contexts:
            context.close()
