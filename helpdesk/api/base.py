"""The blueprint, JSON error handling, request-body validation and cursors shared by the API."""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from flask import Blueprint, current_app, request
from sqlalchemy.exc import IntegrityError

from helpdesk.errors import error_response
from helpdesk.extensions import db
from helpdesk.operations.contacts import OperationError

bp = Blueprint("api", __name__, url_prefix="/api/v1")

E = TypeVar("E", bound=enum.Enum)

#: JSON bodies above this are refused with 413 (CSV imports use the upload limit instead).
DEFAULT_MAX_JSON_BYTES = 1024 * 1024
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100


class ApiError(Exception):
    """An error answered as ``{"error": {"status", "code", "message", ...}}``."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra


def invalid(field: str, message: str) -> ApiError:
    """A 422 naming the field that is wrong."""
    return ApiError(422, message, "invalid", field=field)


def not_found(what: str, ident: object) -> ApiError:
    return ApiError(404, f"{what} {ident} does not exist", "not_found")


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    db.session.rollback()
    return error_response(exc.status, exc.message, exc.code, **exc.extra)


@bp.errorhandler(OperationError)
def _operation_error(exc: OperationError):
    db.session.rollback()
    field = getattr(exc, "field", None)
    status = getattr(exc, "status", 422)
    extra = {"field": field} if field else {}
    return error_response(status, str(exc), None, **extra)


@bp.errorhandler(IntegrityError)
def _integrity_error(exc: IntegrityError):
    db.session.rollback()
    return error_response(409, "The request conflicts with data stored meanwhile; retry it.")


# ------------------------------------------------------------------ bodies


def json_body() -> dict[str, Any]:
    """Return the request's JSON object; 413 when too large, 400 when not JSON."""
    limit = current_app.config.get("RAPPORT_API_MAX_JSON_BYTES", DEFAULT_MAX_JSON_BYTES)
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"The body is too large; the limit is {limit} bytes.", "too_large")
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise ApiError(413, f"The body is too large; the limit is {limit} bytes.", "too_large")
    if not raw.strip():
        raise ApiError(400, "A JSON object is required as the body.", "malformed_json")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"The body is not valid JSON: {exc}", "malformed_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The body must be a JSON object.", "malformed_json")
    return data


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_email(value: str) -> bool:
    return bool(_EMAIL.match(value.strip()))


class Fields:
    """Read typed fields from a JSON object; each mistake is a 422 naming the field."""

    def __init__(self, data: dict[str, Any], prefix: str = "", known: tuple[str, ...] = ()) -> None:
        self.data = data
        self.prefix = prefix
        if known:
            unknown = sorted(set(data) - set(known))
            if unknown:
                raise invalid(self._name(unknown[0]), f"unknown field '{self._name(unknown[0])}'")

    def _name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def has(self, key: str) -> bool:
        return key in self.data

    def _raw(self, key: str, required: bool) -> Any:
        value = self.data.get(key)
        if value is None and required:
            raise invalid(self._name(key), f"'{self._name(key)}' is required")
        return value

    def string(
        self, key: str, *, required: bool = False, max_length: int = 10_000, empty: bool = True
    ) -> str | None:
        value = self._raw(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise invalid(self._name(key), f"'{self._name(key)}' must be a string")
        if (required or not empty) and not value.strip():
            raise invalid(self._name(key), f"'{self._name(key)}' must not be empty")
        if len(value) > max_length:
            raise invalid(
                self._name(key), f"'{self._name(key)}' is longer than {max_length} characters"
            )
        return value

    def email(self, key: str, *, required: bool = False) -> str | None:
        value = self.string(key, required=required, max_length=320)
        if value is not None and not is_email(value):
            raise invalid(self._name(key), f"'{value}' is not an email address")
        return value.strip() if value else value

    def phone(self, key: str, *, required: bool = False) -> str | None:
        value = self.string(key, required=required, max_length=64)
        if value is not None and not re.fullmatch(r"\+?[\d\s().\-]{4,}", value.strip()):
            raise invalid(self._name(key), f"'{value}' is not a phone number")
        return value

    def integer(self, key: str, *, required: bool = False, nullable: bool = False) -> int | None:
        value = self._raw(key, required and not nullable)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(self._name(key), f"'{self._name(key)}' must be an integer")
        return value

    def choice(self, key: str, enum_cls: type[E], *, required: bool = False) -> E | None:
        value = self._raw(key, required)
        if value is None:
            return None
        try:
            return enum_cls(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in enum_cls)
            raise invalid(
                self._name(key), f"'{self._name(key)}' must be one of: {allowed}"
            ) from None

    def strings(self, key: str, *, max_items: int = 100) -> list[str] | None:
        value = self._raw(key, False)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid(self._name(key), f"'{self._name(key)}' must be a list of strings")
        if len(value) > max_items:
            raise invalid(self._name(key), f"'{self._name(key)}' has more than {max_items} items")
        return value

    def mapping(self, key: str, *, required: bool = False) -> dict[str, Any] | None:
        value = self._raw(key, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise invalid(self._name(key), f"'{self._name(key)}' must be an object")
        return value

    def objects(self, key: str) -> list[dict[str, Any]] | None:
        value = self._raw(key, False)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise invalid(self._name(key), f"'{self._name(key)}' must be a list of objects")
        return value

    def decimal(self, key: str, *, required: bool = False) -> Decimal | None:
        value = self._raw(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise invalid(self._name(key), f"'{self._name(key)}' must be a number")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise invalid(self._name(key), f"'{self._name(key)}' must be a number") from None
        if not number.is_finite():
            raise invalid(self._name(key), f"'{self._name(key)}' must be a number")
        return number

    def timestamp(self, key: str) -> datetime | None:
        value = self.string(key, max_length=64)
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise invalid(
                self._name(key), f"'{self._name(key)}' must be an ISO 8601 date and time"
            ) from None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# ------------------------------------------------------------------ queries


def query_int(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise invalid(name, f"'{name}' must be an integer") from None


def page_size() -> int:
    size = query_int("limit") or DEFAULT_PAGE_SIZE
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise invalid("limit", f"'limit' must be between 1 and {MAX_PAGE_SIZE}")
    return size


def encode_cursor(*values: Any) -> str:
    """Make an opaque cursor from the sort key of the last row on a page."""
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_cursor(raw: str | None, *types: type) -> tuple[Any, ...] | None:
    """Read a cursor made by ``encode_cursor``; 422 when it was not."""
    if not raw:
        return None
    try:
        padded = raw + "=" * (-len(raw) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError
        result: list[Any] = []
        for value, kind in zip(values, types, strict=True):
            if kind is datetime:
                result.append(datetime.fromisoformat(value))
            elif kind is int and isinstance(value, int) and not isinstance(value, bool):
                result.append(value)
            else:
                raise ValueError
        return tuple(result)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise invalid("cursor", "'cursor' is not a cursor this API gave out") from None


def page(items: list[Any], size: int, cursor_of: Any) -> tuple[list[Any], str | None]:
    """Split a fetched ``size + 1`` rows into the page and the next cursor."""
    more = len(items) > size
    items = items[:size]
    return items, (cursor_of(items[-1]) if more and items else None)


def iter_enum_values(enum_cls: type[enum.Enum]) -> Iterator[str]:
    return (str(m.value) for m in enum_cls)
