"""The words of reminder messages, SMS bodies and e-mails, in the person's language. Pure:
instants in, text out; the words come from the gettext catalogues (i18n).

An SMS aims for one GSM-7 segment (160 characters): "µ" is outside GSM-7 and would turn the
whole message into UCS-2 (70 characters a segment), so SMS write "mcg". A known supplement is
shown by its name in the reader's language ("C-vitamin"), a custom one as the person wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from html import escape
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError

from i18n import LANGUAGES, Translator, translator
from planner.rules import RULES, Apart
from scheduler.reminders import LOZENGE_NAME
from schemas.languages import display_name, has_display_name
from schemas.names import identify

Purpose = Literal["initial", "followup", "snooze"]


@dataclass(frozen=True)
class EmailText:
    subject: str
    plain: str
    html: str


def _iron_dairy_rule() -> Apart:
    # the gap comes from the rule table, so a changed rule changes the message too
    for rule in RULES.apart:
        if rule.subject == "iron" and "dairy" in rule.others:
            return rule
    raise LookupError("the rule table has no iron-apart-from-dairy rule")


IRON_DAIRY_GAP = timedelta(hours=_iron_dairy_rule().min_hours)


def sms_body(
    items: Sequence[dict[str, Any]],
    due_at: datetime,
    timezone: str,
    purpose: Purpose,
    *,
    language: str,
) -> str:
    """The SMS of a reminder: its head with the dose's time, the doses, iron's note on dairy
    (when iron is among them) and the words to reply with."""
    words = translator(language)
    when = _clock(due_at, timezone)
    what = sms_safe(_doses(items, words))
    if purpose == "initial":
        head = words.gettext("dosewise {time}: {doses}.", time=when, doses=what)
    elif purpose == "followup":
        head = words.gettext("dosewise {time}, not answered yet: {doses}.", time=when, doses=what)
    else:
        head = words.gettext("dosewise {time} again: {doses}.", time=when, doses=what)
    parts = [head]
    keep_away = _keep_away(items, due_at, timezone, words)
    if keep_away:
        parts.append(keep_away)
    parts.append(words.gettext("Reply TAKEN, SKIP or LATER"))
    return " ".join(parts)


def email_text(
    items: Sequence[dict[str, Any]],
    due_at: datetime,
    timezone: str,
    purpose: Purpose,
    confirm_url: str,
    *,
    language: str,
    note: str | None = None,
) -> EmailText:
    """The reminder e-mail; `note` (when given, in the same language) is its first line, e.g.
    why it came by e-mail."""
    words = translator(language)
    when = _clock(due_at, timezone)
    what = _doses(items, words)
    if purpose == "initial":
        subject = words.gettext("dosewise {time}: {doses}", time=when, doses=what)
    elif purpose == "followup":
        subject = words.gettext("Not answered yet: dosewise {time}: {doses}", time=when, doses=what)
    else:
        subject = words.gettext("Again: dosewise {time}: {doses}", time=when, doses=what)
    skip_url = f"{confirm_url}?action=skip"
    keep_away = _keep_away(items, due_at, timezone, words)
    lines = [
        *([note] if note else []),
        words.gettext("Time to take {doses} ({time}).", doses=what, time=when),
        *([keep_away] if keep_away else []),
    ]
    plain = "\n".join(
        [
            *lines,
            "",
            words.gettext("Taken: {url}", url=confirm_url),
            words.gettext("Skipped: {url}", url=skip_url),
            "",
            "dosewise",
        ]
    )
    paragraphs = "".join(f"<p>{escape(line)}</p>" for line in lines)
    took, skip = escape(words.gettext("I took it")), escape(words.gettext("Skip this one"))
    html = (
        f'<html lang="{escape(words.language)}"><body>{paragraphs}'
        f'<p><a href="{escape(confirm_url)}">{took}</a> &middot; '
        f'<a href="{escape(skip_url)}">{skip}</a></p>'
        "<p>dosewise</p></body></html>"
    )
    return EmailText(subject, plain, html)


def doses(items: Sequence[dict[str, Any]], language: str) -> str:
    """'jern 18 mg + C-vitamin 250 mg': each item's name and dose for a reader of `language`."""
    return _doses(items, translator(language))


def _doses(items: Sequence[dict[str, Any]], words: Translator) -> str:
    return " + ".join(f"{_name(item, words)} {_dose(item['dose'], words)}" for item in items)


def _name(item: dict[str, Any], words: Translator) -> str:
    """A known supplement by the reader's name for it ("C-vitamin" for "vitamin C" or
    "ascorbic acid"), unless the person's name for it says its form ("magnesium citrate"),
    which the reader needs to find the right bottle; a custom item as written."""
    key = str(item.get("supplement") or "")
    written = item.get("name")
    if written == LOZENGE_NAME:
        return words.gettext("zinc lozenge")
    if has_display_name(key) and (not written or not _names_a_form(str(written))):
        return display_name(key, words.language)
    return str(written or key)


@cache
def _names_a_form(written: str) -> bool:
    try:
        return identify(written).form is not None
    except ValueError:  # a name the file reader would refuse today: shown as it was stored
        return True


_DOSE = re.compile(r"^(?P<whole>\d+)(?:\.(?P<fraction>\d+))?\s+(?P<unit>\S.*)$")


def dose_text(dose: str, language: str) -> str:
    """A stored dose ('0.5 mg', '1000 IU') as its reader writes it: the language's decimal
    sign ('0,5 mg' in Danish) and its abbreviation for international units ('1000 IE').
    No grouping of thousands: '1.000' reads as one in English and as a thousand in Danish."""
    return _dose(dose, translator(language))


def _dose(dose: str, words: Translator) -> str:
    found = _DOSE.match(dose)
    if found is None:
        return dose  # not a dose dosewise wrote: shown as it is
    number = found["whole"]
    if found["fraction"]:
        number += _decimal_sign(words.language) + found["fraction"]
    unit = found["unit"]
    if unit == "IU":
        unit = words.gettext("IU")
    return f"{number} {unit}"


@cache
def _decimal_sign(language: str) -> str:
    try:
        return str(Locale.parse(language).number_symbols["latn"]["decimal"])
    except (UnknownLocaleError, KeyError, ValueError):
        return "."


# -- iron's note on dairy, and its time counted again at sending ----------------------------


def _keep_away_template(words: Translator) -> str:
    return words.gettext("Keep dairy away until {time}.")


def _keep_away(
    items: Sequence[dict[str, Any]], due_at: datetime, timezone: str, words: Translator
) -> str | None:
    if not any(item.get("supplement") == "iron" for item in items):
        return None
    return _keep_away_template(words).format(time=_keep_away_time(due_at, timezone))


def _keep_away_time(taken_at: datetime, timezone: str) -> str:
    # real elapsed time: on a clock-change day "3 h later" is not 3 wall-clock hours
    return _clock(taken_at + IRON_DAIRY_GAP, timezone)


@dataclass(frozen=True)
class _KeepAwayNote:
    """One language's "Keep dairy away until HH:MM.": the words around the time, and a pattern
    that finds the time between them."""

    before: str
    after: str
    pattern: re.Pattern[str]


@cache
def _keep_away_notes() -> tuple[_KeepAwayNote, ...]:
    """The note in every catalogue's words, as text and as HTML writes it: a message keeps
    the language it was written in, whatever the person reads when it goes out."""
    notes = {}
    for language in LANGUAGES:
        template = _keep_away_template(translator(language))
        for written in (template, escape(template)):
            before, placeholder, after = written.partition("{time}")
            if placeholder and before:
                pattern = re.compile(f"{re.escape(before)}\\d\\d:\\d\\d{re.escape(after)}")
                notes[before, after] = _KeepAwayNote(before, after, pattern)
    return tuple(notes.values())


def keep_away_from_sending(body: str, sent_at: datetime, timezone: str) -> str:
    """`body` with its "Keep dairy away until HH:MM." counted from `sent_at`, in whichever
    language the body was written.

    The text is written when the message is queued, from the dose's planned time; a snooze, a
    follow-up or a retry goes out later, and the dose is taken when the message arrives, so
    the time to keep dairy away until is counted from the sending, in the person's zone.
    """
    notes = [note for note in _keep_away_notes() if note.before in body]
    if not notes:
        return body
    try:
        fresh = _keep_away_time(sent_at, timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return body  # an unknown zone: the time as queued rather than a wrong one
    return _with_time(body, notes, fresh)


def same_text(sent: str, queued: str) -> bool:
    """Whether `sent` is `queued` as keep_away_from_sending may have changed it."""
    if sent == queued:
        return True
    return _without_keep_away_time(sent) == _without_keep_away_time(queued)


def _without_keep_away_time(body: str) -> str:
    return _with_time(body, [note for note in _keep_away_notes() if note.before in body], "--:--")


def _with_time(body: str, notes: Sequence[_KeepAwayNote], time: str) -> str:
    for note in notes:
        written = f"{note.before}{time}{note.after}"
        body = note.pattern.sub(lambda _: written, body)  # noqa: B023 (used at once)
    return body


def _clock(instant: datetime, timezone: str) -> str:
    local = instant.astimezone(ZoneInfo(timezone))
    return f"{local.hour:02d}:{local.minute:02d}"


def sms_safe(text: str) -> str:
    """`text` in the GSM-7 characters of one SMS segment: micrograms spelled mcg."""
    return text.replace("µg", "mcg").replace("μg", "mcg")


# the outbox has one body column: an e-mail's plain text, then its HTML after this line
EMAIL_HTML_MARK = "\n<!-- dosewise:html -->\n"


def pack_email(plain: str, html: str) -> str:
    return f"{plain}{EMAIL_HTML_MARK}{html}"


def unpack_email(body: str) -> tuple[str, str | None]:
    """(plain, html) of an outbox e-mail body; a body without HTML is all plain text."""
    plain, mark, html = body.partition(EMAIL_HTML_MARK)
    return (plain, html) if mark else (body, None)
