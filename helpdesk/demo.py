"""A demo workspace: agents, teams, contacts on several channels, tickets in every status.

Everything goes through the same operations and the ingest funnel real data
uses, so the demo also exercises them. Seeding runs once; a second run does
nothing unless forced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select

from channels.base import IdentityKind, InboundMessage, SenderIdentity, ThreadingHints
from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.ingest import ingest_message
from helpdesk.models import (
    CannedResponse,
    CustomAttribute,
    DeliveryStatus,
    Order,
    OrderStatus,
    Priority,
    Role,
    SavedView,
    TicketStatus,
    User,
    utcnow,
)
from helpdesk.operations.contacts import update_contact
from helpdesk.operations.messages import add_note, reply_to_ticket
from helpdesk.operations.tickets import assign_ticket, set_priority, set_status, set_tags
from helpdesk.operations.users import create_team, create_user

ADMIN_EMAIL = "admin@rapport.test"
DEMO_PASSWORD = "rapport-demo"  # noqa: S105  (demo only; the README says to change it)
SEED = Actor.system("demo")


@dataclass(frozen=True)
class DemoResult:
    admin_email: str
    admin_password: str
    tickets: int


CONTACTS = [
    # name, email, phone, telegram, whatsapp, locale
    ("Ada Lovelace", "ada@example.test", "+44 20 7946 0018", None, None, "en"),
    ("Νίκος Παπαδόπουλος", "nikos@example.test", None, "100200300", "+30 210 555 0101", "el"),
    ("Kovács Eszter", "eszter@example.test", "+36 1 555 0199", None, None, "hu"),
    ("ليلى حداد", "layla@example.test", None, None, "+971 4 555 0123", "ar"),
    ("Grace Hopper", "grace@example.test", None, "100200400", None, "en"),
    ("Dimitra Georgiou", "dimitra@example.test", "+30 2310 555 222", None, None, "el"),
]

THREADS = [
    # contact index, channel, subject, customer lines, agent reply, final status, priority, tags
    (
        0,
        "email",
        "Parcel has not arrived",
        ["Hello, I ordered a lamp two weeks ago (order 1001) and it has not arrived."],
        "Sorry about that, {name}! I've asked the courier and will update you tomorrow.",
        TicketStatus.PENDING,
        Priority.HIGH,
        ["shipping", "vip"],
    ),
    (
        1,
        "email",
        "Λάθος μέγεθος",
        ["Γεια σας, παρέλαβα λάθος μέγεθος παπουτσιών. Μπορώ να τα ανταλλάξω;"],
        "Γεια σας {name}, φυσικά! Σας στείλαμε την ετικέτα επιστροφής.",
        TicketStatus.SOLVED,
        Priority.NORMAL,
        ["returns"],
    ),
    (
        2,
        "email",
        "Számla másolat",
        ["Jó napot! Kérném a múlt havi számla másolatát."],
        None,
        TicketStatus.NEW,
        Priority.NORMAL,
        ["billing"],
    ),
    (
        3,
        "whatsapp",
        "",
        ["مرحبا، هل يمكنني تغيير عنوان التوصيل؟"],
        "مرحبا {name}، نعم بالتأكيد. ما هو العنوان الجديد؟",
        TicketStatus.OPEN,
        Priority.NORMAL,
        ["shipping"],
    ),
    (
        4,
        "telegram",
        "",
        ["Is the discount code still valid?", "It says expired at checkout."],
        None,
        TicketStatus.OPEN,
        Priority.URGENT,
        ["discounts"],
    ),
    (
        5,
        "sms",
        "",
        ["Can I pick up my order in store?"],
        "Yes, from tomorrow 10:00.",
        TicketStatus.CLOSED,
        Priority.LOW,
        [],
    ),
    (
        0,
        "email",
        "Broken handle on delivery",
        ["The handle of the kettle was broken when it arrived. Photo attached soon."],
        "We're sending a replacement today.",
        TicketStatus.OPEN,
        Priority.HIGH,
        ["damaged", "vip"],
    ),
    (
        2,
        "api",
        "Order status question",
        ["Submitted from the shop contact form: where is order 1005?"],
        None,
        TicketStatus.NEW,
        Priority.NORMAL,
        [],
    ),
]

CANNED = [
    ("Greeting", "hello", "Hello {{ contact.first_name }},\n\nThanks for getting in touch."),
    (
        "Tracking link",
        "tracking",
        "Hi {{ contact.first_name }}, you can follow your parcel here: https://example.test/track",
    ),
    ("Closing", "bye", "Glad we could help, {{ contact.first_name }}. Have a lovely day!"),
]


def seed_demo(*, force: bool = False) -> DemoResult | None:
    """Create the demo workspace unless users exist already (or ``force``)."""
    if not force and db.session.scalar(select(func.count(User.id))):
        return None
    admin = create_user(
        actor=SEED, email=ADMIN_EMAIL, name="Alex Admin", password=DEMO_PASSWORD, role=Role.ADMIN
    )
    sam = create_user(
        actor=SEED, email="sam@rapport.test", name="Sam Support", password=DEMO_PASSWORD
    )
    noor = create_user(
        actor=SEED,
        email="noor@rapport.test",
        name="Noor Nassar",
        password=DEMO_PASSWORD,
        role=Role.AGENT,
    )
    zoltan = create_user(
        actor=SEED, email="zoltan@rapport.test", name="Zoltán Szabó", password=DEMO_PASSWORD
    )
    create_user(
        actor=SEED,
        email="viewer@rapport.test",
        name="Vera Viewer",
        password=DEMO_PASSWORD,
        role=Role.READ_ONLY,
    )
    noor.locale = "ar"
    support = create_team(actor=SEED, name="Support", members=[sam, noor], round_robin=True)
    billing = create_team(actor=SEED, name="Billing", members=[zoltan])
    db.session.add_all(
        [
            CustomAttribute(
                applies_to="contact",
                key="plan",
                label="Plan",
                type="choice",
                options=["basic", "plus", "pro"],
            ),
            CustomAttribute(applies_to="contact", key="birthday", label="Birthday", type="date"),
            CustomAttribute(
                applies_to="ticket", key="order_number", label="Order number", type="text"
            ),
        ]
    )
    for title, shortcut, body in CANNED:
        db.session.add(CannedResponse(title=title, shortcut=shortcut, body=body))

    contacts = []
    for index, (name, email, phone, telegram, whatsapp, locale) in enumerate(CONTACTS):
        identities = [SenderIdentity(IdentityKind.EMAIL, email, name)]
        if phone:
            identities.append(SenderIdentity(IdentityKind.PHONE, phone))
        if telegram:
            identities.append(SenderIdentity(IdentityKind.TELEGRAM, telegram))
        if whatsapp:
            identities.append(SenderIdentity(IdentityKind.WHATSAPP, whatsapp))
        from helpdesk.operations.contacts import create_contact

        contact = create_contact(actor=SEED, name=name, identities=identities, locale=locale)
        contacts.append(contact)
        db.session.flush()
        if index in (0, 4):
            update_contact(
                contact, actor=SEED, attributes={"plan": "pro" if index == 0 else "plus"}
            )

    now = utcnow()
    agents = [sam, noor, zoltan]
    tickets = 0
    for number, (ci, channel, subject, lines, reply, status, priority, tags) in enumerate(THREADS):
        contact = contacts[ci]
        kind = {
            "email": IdentityKind.EMAIL,
            "sms": IdentityKind.PHONE,
            "telegram": IdentityKind.TELEGRAM,
            "whatsapp": IdentityKind.WHATSAPP,
            "api": IdentityKind.EMAIL,
        }[channel]
        sender = contact.identity_value(kind) or contact.email
        ticket = None
        for line_no, line in enumerate(lines):
            result = ingest_message(
                InboundMessage(
                    channel=channel,
                    external_id=f"demo-{number}-{line_no}",
                    sender=SenderIdentity(kind, sender or "", contact.name),
                    subject=subject or None,
                    text=line,
                    threading=ThreadingHints(
                        conversation_id=f"demo-{number}" if channel != "email" else None,
                        ticket_id=ticket.id if ticket else None,
                    ),
                    language=contact.locale,
                )
            )
            ticket = result.ticket
        assert ticket is not None
        tickets += 1
        agent = agents[number % len(agents)]
        team = billing if "billing" in tags else support
        assign_ticket(
            ticket,
            actor=SEED,
            assignee=agent if status is not TicketStatus.NEW else None,
            team=team,
        )
        set_priority(ticket, priority, actor=SEED)
        if tags:
            set_tags(ticket, tags, actor=SEED)
        if reply:
            message = reply_to_ticket(
                ticket,
                actor=Actor.for_user(agent),
                author=agent,
                body=reply.format(name=contact.first_name),
                idempotency_key=f"demo-reply-{number}",
            )
            # Historical demo replies count as delivered; no job should try to send them.
            message.status = DeliveryStatus.SENT
            message.sent_at = now
        if number == 0:
            add_note(
                ticket,
                actor=Actor.for_user(sam),
                author=sam,
                body="@noor could you check the courier portal?",
            )
        if status is not ticket.status:
            set_status(ticket, status, actor=SEED)
        # Spread activity over the last days so lists have a believable order.
        ticket.last_activity_at = now - timedelta(hours=3 * number)

    for index, contact in enumerate(contacts):
        for n in range(index % 3 + 1):
            db.session.add(
                Order(
                    external_id=f"10{index}{n}",
                    contact=contact,
                    total=Decimal("19.90") * (n + 1) + index,
                    currency="EUR",
                    status=OrderStatus.PAID if n else OrderStatus.FULFILLED,
                    placed_at=now - timedelta(days=30 * (n + 1) + index),
                    items=[{"sku": f"SKU-{index}{n}", "name": "Demo item", "quantity": n + 1}],
                )
            )
    db.session.add(
        SavedView(user_id=sam.id, name="Urgent & VIP", filters={"tag": "vip"}, is_shared=True)
    )
    from automation.incentives.seed import seed_incentive_examples

    seed_incentive_examples()
    db.session.commit()
    return DemoResult(admin_email=admin.email, admin_password=DEMO_PASSWORD, tickets=tickets)
