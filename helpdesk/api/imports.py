"""CSV imports through the API: ``text/csv`` body or a multipart ``file``; answers the report."""

from __future__ import annotations

from flask import current_app, jsonify, request

from helpdesk.extensions import db
from helpdesk.operations.imports import import_contacts_csv, import_orders_csv

from .auth import current_actor, token_required
from .base import ApiError, bp


def _csv_upload() -> bytes:
    limit = current_app.config["RAPPORT_MAX_UPLOAD_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"The file is too large; the limit is {limit} bytes.", "too_large")
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            message = "Send the CSV as the multipart field 'file'."
            raise ApiError(422, message, "invalid", field="file")
        data = upload.read(limit + 1)
    elif request.mimetype in ("text/csv", "text/plain", "application/csv"):
        data = request.get_data()
    else:
        raise ApiError(
            415,
            "Send the CSV as a text/csv body or as the multipart field 'file'.",
            "unsupported_media_type",
        )
    if len(data) > limit:
        raise ApiError(413, f"The file is too large; the limit is {limit} bytes.", "too_large")
    if not data.strip():
        raise ApiError(422, "The CSV is empty.", "invalid", field="file")
    return data


@bp.post("/imports/contacts")
@token_required("contacts:write")
def import_contacts():
    report = import_contacts_csv(_csv_upload(), actor=current_actor())
    db.session.commit()
    return jsonify(report.as_dict())


@bp.post("/imports/orders")
@token_required("orders:write")
def import_orders():
    report = import_orders_csv(_csv_upload(), actor=current_actor())
    db.session.commit()
    return jsonify(report.as_dict())
