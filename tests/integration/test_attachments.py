"""Attachments are served to signed-in staff only, and never as active content."""

from __future__ import annotations

import pytest

from channels.base import InboundAttachment
from helpdesk.extensions import db
from helpdesk.ingest import ingest_message
from tests.factories import inbound

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
HTML = b"<html><script>alert(document.cookie)</script></html>"


@pytest.fixture
def stored(app):
    result = ingest_message(
        inbound(
            html='<p><img src="cid:logo@x"></p>',
            attachments=(
                InboundAttachment(
                    "logo.png", "image/png", PNG, content_id="logo@x", is_inline=True
                ),
                InboundAttachment("invoice.html", "text/html", HTML),
                InboundAttachment(
                    "huge.iso",
                    "application/octet-stream",
                    b"",
                    skipped_reason="too large",
                    size=10**9,
                ),
            ),
        )
    )
    db.session.commit()
    return result.message


def test_anonymous_visitors_cannot_download_attachments(client, stored):
    logo = stored.attachments[0]
    response = client.get(f"/attachments/{logo.id}/{logo.filename}")
    assert response.status_code == 302 and "/login" in response.location


def test_an_inline_image_is_shown_as_an_image_with_protective_headers(
    client, stored, make_user, login
):
    login(make_user("read_only"))
    logo = stored.attachments[0]
    response = client.get(f"/attachments/{logo.id}/{logo.filename}")
    body = response.get_data()
    response.close()  # the file is streamed; close it as a server would
    assert response.status_code == 200
    assert body == PNG
    assert response.mimetype == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert f"/attachments/{logo.id}/" in stored.html


def test_an_html_attachment_is_only_ever_a_download(client, stored, make_user, login):
    login(make_user("agent"))
    page = stored.attachments[1]
    response = client.get(f"/attachments/{page.id}/{page.filename}")
    response.close()
    assert response.status_code == 200
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert "sandbox" in response.headers["Content-Security-Policy"]


def test_an_attachment_that_was_too_large_to_keep_is_a_clear_404(client, stored, make_user, login):
    login(make_user("agent"))
    skipped = stored.attachments[2]
    response = client.get(f"/attachments/{skipped.id}/{skipped.filename}")
    assert response.status_code == 404
    assert b"too large" in response.data


def test_the_ticket_page_links_each_kept_attachment(client, stored, make_user, login):
    login(make_user("agent"))
    page = client.get(f"/tickets/{stored.ticket_id}").get_data(as_text=True)
    assert f"/attachments/{stored.attachments[1].id}/invoice.html" in page
    assert f"/attachments/{stored.attachments[2].id}/" not in page
