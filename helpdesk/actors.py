"""Who did something: every operation takes an explicit actor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from helpdesk.models import ApiToken, Contact, User


@dataclass(frozen=True, slots=True)
class Actor:
    """A user, a contact, an API token, a rule or the system itself."""

    kind: str  # "user", "contact", "api", "automation", "system"
    id: int | None = None
    label: str = ""

    @property
    def is_automation(self) -> bool:
        return self.kind == "automation"

    @property
    def is_user(self) -> bool:
        return self.kind == "user"

    @classmethod
    def for_user(cls, user: User) -> Actor:
        return cls("user", user.id, user.name)

    @classmethod
    def for_contact(cls, contact: Contact) -> Actor:
        # Not display_name: that may load identities, and this runs on every ingest.
        return cls("contact", contact.id, contact.name or f"contact #{contact.id}")

    @classmethod
    def for_token(cls, token: ApiToken) -> Actor:
        return cls("api", token.id, token.name)

    @classmethod
    def automation(cls, rule_id: int | None = None, label: str = "automation") -> Actor:
        return cls("automation", rule_id, label)

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls("system", None, label)


SYSTEM = Actor.system()
