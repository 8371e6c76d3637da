"""CSV imports of contacts and orders: good rows are imported, bad rows reported.

Each row runs in its own savepoint, so a row that fails half-way leaves nothing
behind. Rows are numbered as a spreadsheet shows them: the header is row 1.
Files may start with a UTF-8 byte-order mark and use ``,`` or ``;`` (or tabs).
The caller commits.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from channels.base import IdentityKind, SenderIdentity
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.models import Company, Contact, OrderStatus

from .contacts import (
    OperationError,
    add_identity,
    coerce_attributes,
    create_contact,
    find_contact,
    normalize_identity,
    update_contact,
)
from .orders import OrderError, record_order

__all__ = [
    "ImportReport",
    "RowError",
    "find_or_create_company",
    "import_contacts_csv",
    "import_orders_csv",
]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[\d\s().\-]{4,}$")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
ATTRIBUTE_PREFIX = "attr:"
CONTACT_COLUMNS = ("name", "email", "phone", "company", "locale")
ORDER_COLUMNS = (
    "external_id",
    "email",
    "phone",
    "name",
    "total",
    "currency",
    "status",
    "placed_at",
    "refunded_total",
)


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one row was not imported; ``field`` names the column when one is to blame."""

    row: int
    message: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class ImportReport:
    created: int
    updated: int
    skipped: int
    errors: list[RowError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _RowProblem(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


# ------------------------------------------------------------------ reading


def _text(data: bytes | str) -> str:
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _RowProblem(
                f"the file is not UTF-8 (byte {exc.start}); save it as 'CSV UTF-8' and try again"
            ) from None
    return data.removeprefix("\ufeff")


def _delimiter(header_line: str) -> str:
    """The header's most frequent separator outside quotes: ``;``, ``,`` or a tab."""
    outside = re.sub(r'"[^"]*"', "", header_line)
    counts = {sep: outside.count(sep) for sep in (";", ",", "\t")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _rows(text: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first_line))
    try:
        header = next(reader)
    except StopIteration:
        raise _RowProblem("the file is empty") from None
    except csv.Error as exc:
        raise _RowProblem(f"the header cannot be read: {exc}") from None
    columns = [_column(name) for name in header]

    def numbered() -> Iterator[tuple[int, list[str]]]:
        number = 1
        while True:
            number += 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield number, [f"\0{exc}"]
                continue
            yield number, cells

    return columns, numbered()


def _column(name: str) -> str:
    name = name.strip()
    if name.lower().startswith(ATTRIBUTE_PREFIX):
        return ATTRIBUTE_PREFIX + name[len(ATTRIBUTE_PREFIX) :].strip()
    return name.lower().replace(" ", "_")


def _run(
    data: bytes | str,
    *,
    required: Callable[[list[str]], RowError | None],
    import_row: Callable[[dict[str, str]], str],
) -> ImportReport:
    counts = {"created": 0, "updated": 0, "skipped": 0}
    errors: list[RowError] = []
    try:
        columns, rows = _rows(_text(data))
    except _RowProblem as problem:
        return ImportReport(0, 0, 0, [RowError(1, problem.message, problem.field)])
    duplicate = next((c for c in columns if columns.count(c) > 1 and c), None)
    if duplicate:
        twice = RowError(1, f"column '{duplicate}' appears twice", duplicate)
        return ImportReport(0, 0, 0, [twice])
    missing = required(columns)
    if missing is not None:
        return ImportReport(0, 0, 0, [missing])
    for number, cells in rows:
        if cells and cells[0].startswith("\0"):
            errors.append(RowError(number, f"the row cannot be read: {cells[0][1:]}"))
            continue
        if not any(cell.strip() for cell in cells):
            continue  # blank lines, often at the end of a spreadsheet export
        if len(cells) != len(columns):
            errors.append(
                RowError(
                    number, f"the row has {len(cells)} values but the header has {len(columns)}"
                )
            )
            continue
        values = {c: v.strip() for c, v in zip(columns, cells, strict=True) if c}
        try:
            with db.session.begin_nested():
                outcome = import_row(values)
        except _RowProblem as problem:
            errors.append(RowError(number, problem.message, problem.field))
        except OrderError as exc:
            errors.append(RowError(number, str(exc), exc.field))
        except OperationError as exc:
            errors.append(RowError(number, str(exc)))
        except IntegrityError:
            errors.append(RowError(number, "the row conflicts with data stored meanwhile"))
        else:
            counts[outcome] += 1
    return ImportReport(counts["created"], counts["updated"], counts["skipped"], errors)


def _needs(*groups: tuple[str, ...]) -> Callable[[list[str]], RowError | None]:
    """Each group of columns needs at least one of its members in the header."""

    def check(columns: list[str]) -> RowError | None:
        for group in groups:
            if not any(name in columns for name in group):
                wanted = " or ".join(f"'{name}'" for name in group)
                return RowError(1, f"missing column {wanted}", group[0])
        return None

    return check


# ------------------------------------------------------------------ contacts


def import_contacts_csv(data: bytes | str, *, actor: Actor) -> ImportReport:
    """Create or update contacts from CSV (name, email, phone, company, locale, attr:<key>)."""
    return _run(
        data,
        required=_needs(("email", "phone")),
        import_row=lambda values: _import_contact(values, actor),
    )


def _import_contact(values: dict[str, str], actor: Actor) -> str:
    email = values.get("email") or None
    phone = values.get("phone") or None
    if email is None and phone is None:
        raise _RowProblem("the row needs an email or a phone", "email")
    if email is not None and not _EMAIL.match(email):
        raise _RowProblem(f"'{email}' is not an email address", "email")
    if phone is not None and not _PHONE.match(phone):
        raise _RowProblem(f"'{phone}' is not a phone number", "phone")
    locale = values.get("locale") or None
    if locale is not None and not _LOCALE.match(locale):
        raise _RowProblem(f"'{locale}' is not a locale such as 'el' or 'hu-HU'", "locale")
    attributes = _attributes(values)
    name = values.get("name", "")

    by_email = find_contact(IdentityKind.EMAIL, email) if email else None
    by_phone = find_contact(IdentityKind.PHONE, phone) if phone else None
    if by_email and by_phone and by_email.id != by_phone.id:
        raise _RowProblem(
            f"the email belongs to contact {by_email.id} and the phone to contact {by_phone.id}",
            "phone",
        )
    contact = by_email or by_phone
    company = values.get("company") or None
    company_id = find_or_create_company(company).id if company else None

    if contact is None:
        identities = [
            SenderIdentity(kind, value)
            for kind, value in ((IdentityKind.EMAIL, email), (IdentityKind.PHONE, phone))
            if value
        ]
        contact = create_contact(
            actor=actor, name=name, identities=identities, locale=locale, attributes=attributes
        )
        if company_id is not None:
            update_contact(contact, actor=actor, company_id=company_id)
        return "created"

    before = _snapshot(contact)
    changes: dict[str, Any] = {}
    if company_id is not None:
        changes["company_id"] = company_id
    update_contact(
        contact,
        actor=actor,
        name=name or None,
        locale=locale,
        attributes=attributes or None,
        **changes,
    )
    for kind, value in ((IdentityKind.EMAIL, email), (IdentityKind.PHONE, phone)):
        if value and contact.identity_value(kind) != normalize_identity(kind, value):
            add_identity(contact, SenderIdentity(kind, value), actor=actor)
    db.session.flush()
    return "updated" if _snapshot(contact) != before else "skipped"


def _attributes(values: dict[str, str]) -> dict[str, Any]:
    """Typed custom attributes from ``attr:<key>`` columns; empty cells are left alone."""
    result: dict[str, Any] = {}
    for column, raw in values.items():
        if not column.startswith(ATTRIBUTE_PREFIX) or raw == "":
            continue
        key = column[len(ATTRIBUTE_PREFIX) :]
        try:
            result.update(coerce_attributes("contact", {key: raw}))
        except OperationError as exc:
            raise _RowProblem(str(exc), column) from None
    return result


def _snapshot(contact: Contact) -> tuple[Any, ...]:
    return (
        contact.name,
        contact.locale,
        dict(contact.attributes or {}),
        contact.company_id,
        sorted((i.kind.value, i.value) for i in contact.identities),
    )


def find_or_create_company(name: str) -> Company:
    """Return the company called ``name``, creating it when new."""
    name = name.strip()[:200]
    company = db.session.execute(select(Company).where(Company.name == name)).scalar_one_or_none()
    if company is not None:
        return company
    try:
        with db.session.begin_nested():
            company = Company(name=name)
            db.session.add(company)
    except IntegrityError:  # created by a concurrent import meanwhile
        company = db.session.execute(select(Company).where(Company.name == name)).scalar_one()
    return company


# ------------------------------------------------------------------ orders


def import_orders_csv(data: bytes | str, *, actor: Actor) -> ImportReport:
    """Record orders from CSV (external_id, email or phone, total, currency, status, placed_at,
    refunded_total); a known external_id updates its order."""
    return _run(
        data,
        required=_needs(("external_id",), ("email", "phone"), ("total",), ("currency",)),
        import_row=lambda values: _import_order(values, actor),
    )


def _import_order(values: dict[str, str], actor: Actor) -> str:
    external_id = values.get("external_id", "")
    if not external_id:
        raise _RowProblem("'external_id' is empty", "external_id")
    total = parse_amount(values.get("total", ""), "total")
    if total is None:
        raise _RowProblem("'total' is empty", "total")
    refunded = parse_amount(values.get("refunded_total", ""), "refunded_total")
    status = None
    if raw_status := values.get("status", "").lower().replace(" ", "_"):
        try:
            status = OrderStatus(raw_status)
        except ValueError:
            allowed = ", ".join(s.value for s in OrderStatus)
            raise _RowProblem(
                f"unknown status '{values['status']}'; use one of: {allowed}", "status"
            ) from None
    result = record_order(
        actor=actor,
        external_id=external_id,
        total=total,
        currency=values.get("currency", ""),
        status=status,
        placed_at=parse_timestamp(values.get("placed_at", ""), "placed_at"),
        refunded_total=refunded,
        email=values.get("email") or None,
        phone=values.get("phone") or None,
        name=values.get("name") or None,
    )
    if result.created:
        return "created"
    return "updated" if result.changed else "skipped"


def parse_amount(raw: str, column: str) -> Decimal | None:
    """Read ``12.50``, ``12,50``, ``1.234,50`` or ``1,234.50``; refuse negatives."""
    value = raw.strip().replace("\u00a0", "").replace(" ", "").replace("'", "")
    if not value:
        return None
    if "," in value and "." in value:
        if value.rfind(",") > value.rfind("."):
            value = value.replace(".", "").replace(",", ".")
        else:
            value = value.replace(",", "")
    elif "," in value:
        value = value.replace(",", ".")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise _RowProblem(f"'{raw}' is not an amount", column) from None
    if not amount.is_finite():
        raise _RowProblem(f"'{raw}' is not an amount", column)
    if amount < 0:
        raise _RowProblem(f"'{column}' must not be negative (got {raw})", column)
    return amount


_DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%Y.%m.%d", "%d/%m/%Y", "%Y/%m/%d")


def parse_timestamp(raw: str, column: str) -> datetime | None:
    """Read an ISO 8601 date or date-time (UTC unless it says otherwise) or a plain date."""
    value = raw.strip().rstrip(".")
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        for fmt in _DATE_FORMATS:
            try:
                moment = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
        else:
            raise _RowProblem(
                f"'{raw}' is not a date; use ISO 8601 such as 2024-05-01 or 2024-05-01T14:30:00Z",
                column,
            ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
