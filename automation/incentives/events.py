"""Events the incentive operations send after commit (same pattern as ``helpdesk.events``).

Connect with ``signal(VoucherIssued).connect``; each listener runs in its own
app context and session, like the core listeners.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from helpdesk import events


def signal(event_class: type[events.Event]) -> Any:
    """Return the blinker signal an event class is sent on."""
    return events.signal_for(event_class)  # type: ignore[arg-type]  # reads only ``name``


@dataclass(frozen=True, slots=True)
class IncentiveGranted(events.Event):
    """A grant was stored: granted at once or waiting for approval (``status``)."""

    name: ClassVar[str] = "incentive.granted"
    grant_id: int
    contact_id: int
    ticket_id: int | None
    status: str


@dataclass(frozen=True, slots=True)
class IncentiveDecided(events.Event):
    """A lead approved or rejected a grant that waited for approval."""

    name: ClassVar[str] = "incentive.decided"
    grant_id: int
    contact_id: int
    approved: bool


@dataclass(frozen=True, slots=True)
class VoucherIssued(events.Event):
    """A voucher became usable (at grant time or on approval); shops get the code now."""

    name: ClassVar[str] = "voucher.issued"
    voucher_id: int
    contact_id: int | None
    ticket_id: int | None


@dataclass(frozen=True, slots=True)
class VoucherRedeemed(events.Event):
    name: ClassVar[str] = "voucher.redeemed"
    voucher_id: int
    redemption_id: int
    contact_id: int | None


@dataclass(frozen=True, slots=True)
class RedemptionReversed(events.Event):
    name: ClassVar[str] = "voucher.redemption_reversed"
    voucher_id: int
    redemption_id: int
    contact_id: int | None


CATALOGUE: tuple[type[events.Event], ...] = (
    IncentiveGranted,
    IncentiveDecided,
    VoucherIssued,
    VoucherRedeemed,
    RedemptionReversed,
)
