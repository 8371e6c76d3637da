"""Errors: JSON under /api, a readable page elsewhere, never a bare 500 with a trace."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from helpdesk.extensions import db

log = logging.getLogger(__name__)


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def error_response(status: int, message: str, code: str | None = None, **extra: object):
    """Return an error as JSON for API callers or as a page for people."""
    if wants_json():
        body = {
            "error": {"status": status, "code": code or _code(status), "message": message, **extra}
        }
        return jsonify(body), status
    try:
        return render_template("errors/error.html", status=status, message=message), status
    except Exception:  # the error page itself failed; still answer in words
        log.exception("error page failed to render")
        return message, status, {"Content-Type": "text/plain; charset=utf-8"}


def _code(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "too_large",
        415: "unsupported_media_type",
        422: "invalid",
        429: "rate_limited",
    }.get(status, "error")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        return error_response(
            400, "The form expired or was sent from elsewhere; reload and try again.", "csrf"
        )

    @app.errorhandler(413)
    def _too_large(exc: HTTPException):
        limit = app.config["RAPPORT_MAX_UPLOAD_BYTES"] // (1024 * 1024)
        return error_response(413, f"The upload is too large; the limit is {limit} MB.")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        return error_response(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(
            500, "Something went wrong on our side; nothing was saved. Please try again."
        )
