"""Full-text search over tickets and contacts, on SQLite FTS5 and PostgreSQL alike."""

from __future__ import annotations

import pytest

from helpdesk.actors import Actor
from helpdesk.extensions import db
from helpdesk.ingest import ingest_message
from helpdesk.models import Message
from helpdesk.operations.messages import add_note
from helpdesk.operations.tickets import merge_tickets
from helpdesk.search import Term, install_search, parse_query, search_contacts, search_tickets
from tests.factories import inbound


@pytest.fixture(autouse=True)
def search_installed(app):
    with db.engine.begin() as connection:
        install_search(connection)


def ticket_with(text: str, subject: str | None = None, sender: str = "c@example.test") -> int:
    result = ingest_message(inbound(text, subject=subject or "Question", sender=sender))
    db.session.commit()
    return result.ticket.id


def test_install_search_can_run_twice(app):
    with db.engine.begin() as connection:
        install_search(connection)
    ticket = ticket_with("still indexed once")
    assert search_tickets("indexed") == [ticket]


def test_finds_tickets_by_words_in_messages_and_subjects(app):
    parcel = ticket_with("My parcel never arrived")
    refund = ticket_with("Hello", subject="Refund request")
    ticket_with("Something else entirely")
    assert search_tickets("parcel") == [parcel]
    assert search_tickets("REFUND") == [refund]
    assert search_tickets("nothing-like-this") == []


def test_all_words_must_match(app):
    both = ticket_with("the blue kettle leaks")
    ticket_with("the blue teapot")
    assert search_tickets("blue kettle") == [both]


def test_greek_words_match_in_any_case(app):
    greek = ticket_with("Η παραγγελία μου δεν έφτασε ακόμα", subject="Καθυστέρηση")
    ticket_with("My order is late")
    assert search_tickets("παραγγελία") == [greek]
    assert search_tickets("ΠΑΡΑΓΓΕΛΊΑ") == [greek]
    assert search_tickets("Καθυστέρηση") == [greek]


def test_arabic_words_match(app):
    arabic = ticket_with("لم يصل طلبي بعد", subject="طلب متأخر")
    ticket_with("طلب جديد")
    assert search_tickets("يصل") == [arabic]
    assert search_tickets("متأخر") == [arabic]


def test_hungarian_words_match(app):
    hungarian = ticket_with("A csomagom még nem érkezett meg")
    assert search_tickets("érkezett") == [hungarian]


def test_prefix_search_with_a_star(app):
    greek = ticket_with("Η παραγγελία μου")
    english = ticket_with("Where is my delivery?")
    arabic = ticket_with("أين طلبي")
    assert search_tickets("παραγγ*") == [greek]
    assert search_tickets("deliv*") == [english]
    assert search_tickets("طلب*") == [arabic]
    assert search_tickets("deliv") == []


def test_quoted_phrase_matches_words_in_order(app):
    in_order = ticket_with("the card was declined yesterday")
    ticket_with("yesterday declined the card was")
    assert search_tickets('"card was declined"') == [in_order]


def test_minus_excludes_a_word(app):
    keep = ticket_with("invoice for March")
    ticket_with("invoice for April")
    assert search_tickets("invoice -april") == [keep]
    assert search_tickets("-april") == []


def test_query_syntax_characters_are_treated_as_text(app):
    ticket = ticket_with("Error code 0x80070005 (access denied) AND NOT OR")
    assert search_tickets('access AND "denied') == [ticket]
    assert search_tickets("NOT OR") == [ticket]
    assert search_tickets("(((*") == []
    assert search_tickets("") == []


def test_hash_number_finds_that_ticket(app):
    ticket = ticket_with("anything")
    assert search_tickets(f"#{ticket}") == [ticket]
    assert search_tickets("#999999") == []


def test_notes_and_replies_are_searched_too(app):
    ticket = ticket_with("hello")
    from helpdesk.operations.tickets import get_ticket

    add_note(get_ticket(ticket), actor=Actor.system("t"), body="escalated to the warehouse")
    db.session.commit()
    assert search_tickets("warehouse") == [ticket]


def test_edited_and_deleted_messages_leave_the_index(app):
    ticket = ticket_with("original wording")
    message = db.session.query(Message).filter_by(ticket_id=ticket).one()
    message.text = "changed wording"
    db.session.commit()
    assert search_tickets("original") == []
    assert search_tickets("changed") == [ticket]
    db.session.delete(message)
    db.session.commit()
    assert search_tickets("changed") == []


def test_merged_ticket_is_found_as_the_ticket_kept(app):
    from helpdesk.operations.tickets import get_ticket

    kept = ticket_with("first", subject="Broken lamp")
    merged = ticket_with("the lamp flickers", subject="Lamp again")
    merge_tickets(get_ticket(merged), get_ticket(kept), actor=Actor.system("t"))
    db.session.commit()
    assert search_tickets("flickers") == [kept]
    assert search_tickets("lamp") == [kept]


def test_subject_matches_rank_above_mentions_in_messages(app):
    mention = ticket_with("by the way, the warranty card is missing", subject="Hello")
    subject = ticket_with("see title", subject="Warranty claim")
    assert search_tickets("warranty") == [subject, mention]


def test_limit_caps_the_results(app):
    for n in range(5):
        ticket_with(f"common word {n}")
    assert len(search_tickets("common", limit=3)) == 3


def test_contacts_are_found_by_name_prefix_email_and_phone(app, make_contact):
    eleni = make_contact("Ελένη Παπαδοπούλου", email="eleni@example.test")
    adam = make_contact("Nagy Ádám", email="adam@example.test", phone="+36 30 123 4567")
    layla = make_contact("ليلى حداد")
    assert search_contacts("ΕΛΈΝΗ") == [eleni.id]
    assert search_contacts("παπαδ") == [eleni.id]
    assert search_contacts("ليلى") == [layla.id]
    assert search_contacts("nagy ád") == [adam.id]
    assert search_contacts("adam@example.test") == [adam.id]
    assert search_contacts("+36 30 123") == [adam.id]
    assert search_contacts("nobody") == []


def test_contact_search_follows_renames_and_new_identities(app, make_contact):
    from channels.base import IdentityKind, SenderIdentity
    from helpdesk.operations.contacts import add_identity, update_contact

    contact = make_contact("Old Name")
    update_contact(contact, actor=Actor.system("t"), name="Κώστας")
    add_identity(
        contact, SenderIdentity(IdentityKind.PHONE, "+30 697 1234567"), actor=Actor.system("t")
    )
    db.session.commit()
    assert search_contacts("old") == []
    assert search_contacts("κώστας") == [contact.id]
    assert search_contacts("+30 697") == [contact.id]


def test_parse_query_understands_phrases_prefixes_and_exclusions():
    assert parse_query('"blue kettle" deliv* -april') == [
        Term("blue kettle"),
        Term("deliv", prefix=True),
        Term("april", negated=True),
    ]
    assert parse_query('"unclosed phrase') == [Term("unclosed phrase")]
    assert parse_query("*** ---") == []
