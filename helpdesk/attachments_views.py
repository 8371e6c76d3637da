"""Serving attachments to agents: only as downloads or as inert images, never as pages.

Files come from strangers. A stored HTML or SVG file opened inline would run
in our origin, so everything except a few raster image types is sent as a
download, with nosniff and a sandboxing Content-Security-Policy on top.
"""

from __future__ import annotations

from flask import Blueprint, abort, send_file
from werkzeug.wrappers import Response

from helpdesk import attachments
from helpdesk.auth.access import role_required
from helpdesk.extensions import db
from helpdesk.models import Attachment, Role

bp = Blueprint("attachments", __name__, url_prefix="/attachments")

#: Shown inline (inline cid: images in mail); everything else is a download.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


@bp.get("/<int:attachment_id>/<path:filename>")
@bp.get("/<int:attachment_id>", defaults={"filename": None})
@role_required(Role.READ_ONLY)
def download(attachment_id: int, filename: str | None) -> Response:
    item = db.session.get(Attachment, attachment_id)
    if item is None or item.sha256 is None:
        abort(404, "No such attachment, or it was too large to keep.")
    path = attachments.path_for(item.sha256)
    if not path.exists():
        abort(404, "The attachment's file is missing from storage.")
    content_type = (item.content_type or "").split(";")[0].strip().lower()
    inline = content_type in INLINE_TYPES
    response = send_file(
        path,
        mimetype=content_type if inline else "application/octet-stream",
        as_attachment=not inline,
        download_name=item.filename or "attachment",
        conditional=True,
        max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, max-age=0"
    return response
