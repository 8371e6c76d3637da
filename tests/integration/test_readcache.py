"""ReadCache: per-app answers voided by writes here and by time elsewhere."""

from __future__ import annotations

from typing import Any

import pytest

from helpdesk import readcache
from helpdesk.extensions import db
from helpdesk.models import Team
from helpdesk.readcache import ReadCache


@pytest.fixture
def answers() -> list[int]:
    """What the database "holds"; each read returns the last value and counts itself."""
    return [1]


@pytest.fixture
def cache(answers: list[int]) -> Any:
    reads: list[int] = []

    def read() -> int:
        reads.append(answers[-1])
        return answers[-1]

    made = ReadCache("test.teams", read, ttl=60.0, models=(Team,))
    made.reads = reads  # type: ignore[attr-defined]
    return made


def test_the_answer_is_read_once_and_then_served_from_the_cache(app, cache):
    assert cache.get() == 1
    assert cache.get() == 1
    assert cache.reads == [1]


def test_a_write_in_this_process_voids_the_answer_at_once(app, cache, answers):
    assert cache.get() == 1
    answers.append(2)
    db.session.add(Team(name="Billing"))
    db.session.flush()
    assert cache.get() == 2


def test_a_read_between_the_write_and_the_commit_is_voided_at_commit(app, cache, answers):
    db.session.add(Team(name="Billing"))
    db.session.flush()
    assert cache.get() == 1  # e.g. another session that cannot see the row yet
    answers.append(2)
    db.session.commit()
    assert cache.get() == 2


def test_a_rolled_back_write_voids_what_was_read_meanwhile(app, cache, answers):
    db.session.add(Team(name="Billing"))
    db.session.flush()
    answers.append(2)
    assert cache.get() == 2  # read inside the transaction that is about to be undone
    answers.append(1)
    db.session.rollback()
    assert cache.get() == 1


def test_a_change_in_another_process_is_seen_once_the_ttl_has_passed(
    app, cache, answers, monkeypatch
):
    now = [1000.0]
    monkeypatch.setattr(readcache.time, "monotonic", lambda: now[0])
    assert cache.get() == 1
    answers.append(2)  # written elsewhere: no mapper event here
    now[0] += 59
    assert cache.get() == 1
    now[0] += 2
    assert cache.get() == 2


def test_each_app_keeps_its_own_answer(app, cache, answers):
    from helpdesk import create_app

    assert cache.get() == 1
    answers.append(2)
    other = create_app({**app.config, "TESTING": True})
    with other.app_context():
        assert cache.get() == 2
    assert cache.get() == 1
