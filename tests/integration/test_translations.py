"""Greek, Hungarian and Arabic are complete, keep every placeholder, and reach the pages."""

from __future__ import annotations

import gettext
import io
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

TRANSLATIONS = Path(__file__).resolve().parents[2] / "helpdesk" / "translations"
LANGUAGES = ["el", "hu", "ar"]
PLURAL_FORMS = {"el": 2, "hu": 2, "ar": 6}
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}|%[sd]")


def _po(lang: str) -> Path:
    return TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"


def _catalog(lang: str) -> Catalog:
    with _po(lang).open("rb") as f:
        return read_po(f, locale=lang)


def _entries(catalog: Catalog) -> list[Message]:
    return [m for m in catalog if m.id]


def _forms(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return (value or "",)


@pytest.fixture(scope="module", autouse=True)
def compiled_catalogs() -> None:
    """The .mo files are built by the Makefile and not committed: build any missing or stale one."""
    for lang in LANGUAGES:
        mo = _po(lang).with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < _po(lang).stat().st_mtime:
            with mo.open("wb") as f:
                write_mo(f, _catalog(lang))


@pytest.mark.parametrize("lang", LANGUAGES)
def test_each_catalog_compiles_and_has_no_untranslated_or_fuzzy_entry(lang):
    catalog = _catalog(lang)
    entries = _entries(catalog)
    assert len(entries) > 600

    assert catalog.num_plurals == PLURAL_FORMS[lang]
    assert not catalog.fuzzy
    assert [m.id for m in entries if m.fuzzy] == []
    untranslated = [
        m.id
        for m in entries
        if len(_forms(m.string)) != (catalog.num_plurals if m.pluralizable else 1)
        or not all(form.strip() for form in _forms(m.string))
    ]
    assert untranslated == []
    assert [(m.id, errors) for m, errors in catalog.check()] == []

    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    compiled = gettext.GNUTranslations(buffer)
    assert compiled.gettext("Sign in") != "Sign in"
    assert compiled.ngettext("%(num)s ticket", "%(num)s tickets", 5) != "%(num)s tickets"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_translation_keeps_exactly_the_placeholders_of_its_msgid(lang):
    mismatched = []
    for message in _entries(_catalog(lang)):
        ids = _forms(message.id)
        wanted = set(PLACEHOLDER.findall(ids[0])) | set(PLACEHOLDER.findall(ids[-1]))
        for index, form in enumerate(_forms(message.string)):
            found = set(PLACEHOLDER.findall(form))
            if found != wanted:
                mismatched.append((ids[0], index, sorted(found), sorted(wanted)))
    assert mismatched == []


def _translation(lang: str, msgid: str) -> str:
    message = _catalog(lang)[msgid]
    assert message is not None and isinstance(message.string, str)
    assert message.string and message.string != msgid
    return message.string


@pytest.mark.parametrize(("lang", "direction"), [("ar", "rtl"), ("el", "ltr"), ("hu", "ltr")])
def test_the_sign_in_page_speaks_the_language_asked_for_in_the_query(client, lang, direction):
    response = client.get(f"/login?lang={lang}")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f'<html lang="{lang}" dir="{direction}">' in page
    sign_in = _translation(lang, "Sign in")
    assert f"<title>{sign_in} · Rapport</title>" in page
    assert f">{sign_in}</button>" in page
    assert _translation(lang, "Keep me signed in") in page


def test_the_sign_in_page_is_english_and_left_to_right_without_a_choice(client):
    page = client.get("/login").get_data(as_text=True)

    assert '<html lang="en" dir="ltr">' in page
    assert ">Sign in</button>" in page


def test_the_browser_language_is_used_when_the_query_names_none(client):
    page = client.get("/login", headers={"Accept-Language": "ar, en;q=0.5"}).get_data(as_text=True)

    assert '<html lang="ar" dir="rtl">' in page
    assert _translation("ar", "Sign in") in page


def test_a_signed_in_users_own_language_wins_over_the_query(client, make_user, login):
    agent = make_user("agent", locale="ar")
    login(agent)

    page = client.get("/?lang=el").get_data(as_text=True)

    assert '<html lang="ar" dir="rtl">' in page
    assert _translation("ar", "Sign out") in page
    assert _translation("el", "Sign out") not in page
