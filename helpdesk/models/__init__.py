"""Typed SQLAlchemy models; import from here."""

from ._types import UTCDateTime, utcnow
from .audit import AuditEvent, Notification
from .contacts import Company, Contact, ContactIdentity, CustomAttribute
from .messages import Attachment, DeliveryStatus, Direction, Message
from .orders import Order, OrderStatus
from .quarantine import QuarantinedItem
from .tickets import (
    CannedResponse,
    Priority,
    SavedView,
    Tag,
    Ticket,
    TicketParticipant,
    TicketStatus,
    ticket_tags,
)
from .users import ApiToken, Role, Team, User, team_members

__all__ = [
    "ApiToken",
    "Attachment",
    "AuditEvent",
    "CannedResponse",
    "Company",
    "Contact",
    "ContactIdentity",
    "CustomAttribute",
    "DeliveryStatus",
    "Direction",
    "Message",
    "Notification",
    "Order",
    "OrderStatus",
    "Priority",
    "QuarantinedItem",
    "Role",
    "SavedView",
    "Tag",
    "Team",
    "Ticket",
    "TicketParticipant",
    "TicketStatus",
    "UTCDateTime",
    "User",
    "team_members",
    "ticket_tags",
    "utcnow",
]
