"""Separate the new text of a reply from quoted history and signature.

Covers Gmail, Outlook, Apple Mail, Thunderbird and Yahoo in English, German,
Greek, Hungarian and Arabic, plus mobile "Sent from" footers and ``-- ``
signatures. Forwarded-message markers are deliberately not treated as history:
when a customer forwards a mail to support, the forwarded mail is the content.
"""

from __future__ import annotations

import re

_WROTE = r"(?:wrote|writes|schrieb|a écrit|escribió|ha scritto|schreef|escreveu|έγραψε|írta|كتب)"
# Words an attribution line starts with: "On …", "Am …", "Στις …", "في …", or a date.
_OPENERS = (
    *("On", "Am", "Le", "El", "Il", "Op", "Em", "Den", "W dniu"),
    *("Στις", "Ο χρήστης", "Η χρήστρια"),
    "\u200f?في",
    r"\d{1,4}[./-]",
)
_OPENER = "(?:" + "|".join(_OPENERS) + ")"
_ATTRIBUTION = re.compile(rf"^\s*{_OPENER}.*{_WROTE}.*:\s*$|^.*@.*\b{_WROTE}\b.*:\s*$", re.I)
_ATTRIBUTION_LOOSE = re.compile(rf"^\s*{_OPENER}.*{_WROTE}\s*:?\s*$", re.I)
_OPENS = re.compile(rf"\s*{_OPENER}", re.I)

_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Originalnachricht|"
    r"Αρχικό μήνυμα|Eredeti üzenet|Eredeti levél|الرسالة الأصلية|Message d'origine|"
    r"Mensaje original|Messaggio originale)\s*-{2,}\s*$",
    re.I,
)
_UNDERSCORE_RULE = re.compile(r"^\s*_{10,}\s*$")

_FROM_WORDS = r"(?:From|Von|Από|Feladó|من|De|Van|Od|Från|Fra|Da)"
_HEADER_WORDS = (
    r"(?:Sent|Date|To|Cc|Subject|Gesendet|Datum|An|Betreff|Στάλθηκε|Αποστολή|Ημερομηνία|"
    r"Προς|Θέμα|Elküldve|Küldve|Dátum|Címzett|Tárgy|تم الإرسال|أرسل|التاريخ|إلى|الموضوع|"
    r"Envoyé|Objet|Enviado|Asunto|Para)"
)
_FROM_LINE = re.compile(rf"^\s*\*?{_FROM_WORDS}\s*:\*?\s*\S", re.I)
_HEADER_LINE = re.compile(rf"^\s*\*?{_HEADER_WORDS}\s*:\*?", re.I)

_SIGNATURE = re.compile(r"^--\s*$")
_MOBILE_FOOTER = re.compile(
    r"^\s*(?:Sent from|Sent via|Get Outlook for|Von meinem|Gesendet von|Στάλθηκε από|"
    r"Εστάλη από|Αποστολή από|Küldve|Elküldve|Az .{1,40}(?:küldve|ről)|أرسلت من|"
    r"تم الإرسال من|Envoyé de|Enviado desde)\b",
    re.I,
)
_QUOTED = re.compile(r"^\s*>")


def split_reply(text: str) -> tuple[str, str]:
    """Split a plain-text mail into (new text, quoted history and signature)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start = _history_start(lines)
    if start is not None and not "".join(lines[:start]).strip():
        return _bottom_posted(lines, start)
    head = lines if start is None else lines[:start]
    history = [] if start is None else lines[start:]

    # A block of ">" lines at the end of the head is history too (no attribution line).
    cut = len(head)
    while cut > 0 and (_QUOTED.match(head[cut - 1]) or not head[cut - 1].strip()):
        cut -= 1
    if cut < len(head) and any(_QUOTED.match(line) for line in head[cut:]):
        history = head[cut:] + history
        head = head[:cut]

    signature_at = _signature_start(head)
    if signature_at is not None:
        history = head[signature_at:] + history
        head = head[:signature_at]
    return "\n".join(head).strip(), "\n".join(history).strip()


def _history_start(lines: list[str]) -> int | None:
    for index, line in enumerate(lines):
        if _QUOTED.match(line) or not line.strip():
            continue
        if _ORIGINAL_MESSAGE.match(line):
            return index
        if _is_attribution(lines, index):
            return index
        if _is_header_block(lines, index):
            return index
        if _UNDERSCORE_RULE.match(line) and _is_header_block(lines, index + 1):
            return index
    return None


def _is_attribution(lines: list[str], index: int) -> bool:
    """Tell whether an "On … wrote:" line, possibly wrapped over 3 lines, starts here."""
    # Every window below is a prefix of this one, and both patterns need it to start
    # with an opener or to hold an "@"; most lines fail both cheap tests.
    longest = " ".join(line.strip() for line in lines[index : index + 3])
    if "@" not in longest and not _OPENS.match(longest):
        return False
    window = ""
    for offset in range(3):
        if index + offset >= len(lines) or not lines[index + offset].strip():
            return False
        window = f"{window} {lines[index + offset].strip()}".strip()
        if _ATTRIBUTION.match(window):
            return True
        if offset == 0 and _ATTRIBUTION_LOOSE.match(window) and len(window) < 200:
            return True
    return False


def _is_header_block(lines: list[str], index: int) -> bool:
    """Tell whether an Outlook-style "From: … Sent: …" block starts here."""
    if index >= len(lines) or not _FROM_LINE.match(lines[index]):
        return False
    following = [line for line in lines[index + 1 : index + 6] if line.strip()]
    return sum(1 for line in following[:4] if _HEADER_LINE.match(line)) >= 2


def _signature_start(head: list[str]) -> int | None:
    for index, line in enumerate(head):
        if _SIGNATURE.match(line) and index > 0:
            return index
    content = [i for i, line in enumerate(head) if line.strip()]
    # A mobile footer only counts near the end, so "Sent from my iPhone" mid-text stays.
    for index in content[-3:]:
        if _MOBILE_FOOTER.match(head[index]) and index != content[0]:
            return index
    return None


def _bottom_posted(lines: list[str], start: int) -> tuple[str, str]:
    """Handle replies written below the quote: keep the unquoted lines after it."""
    history: list[str] = []
    new: list[str] = []
    in_attribution = True
    for line in lines[start:]:
        if _QUOTED.match(line):
            in_attribution = False
            history.append(line)
        elif in_attribution:
            history.append(line)
        else:
            new.append(line)
    signature_at = _signature_start(new)
    if signature_at is not None:
        history.extend(new[signature_at:])
        new = new[:signature_at]
    return "\n".join(new).strip(), "\n".join(history).strip()
