"""The words of reminder messages: SMS bodies and e-mails. Pure: instants in, text out.

An SMS aims for one GSM-7 segment (160 characters): "µ" is outside GSM-7 and would turn the
whole message into UCS-2 (70 characters a segment), so SMS write "mcg".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from planner.rules import RULES, Apart

Purpose = Literal["initial", "followup", "snooze"]
REPLY_HINT = "Reply TAKEN, SKIP or LATER"


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
    items: Sequence[dict[str, Any]], due_at: datetime, timezone: str, purpose: Purpose
) -> str:
    when = _clock(due_at, timezone)
    head = {
        "initial": f"dosewise {when}",
        "followup": f"dosewise {when}, not answered yet",
        "snooze": f"dosewise {when} again",
    }[purpose]
    parts = [f"{head}: {sms_safe(doses(items))}."]
    keep_away = _keep_away(items, due_at, timezone)
    if keep_away:
        parts.append(keep_away)
    parts.append(REPLY_HINT)
    return " ".join(parts)


def email_text(
    items: Sequence[dict[str, Any]],
    due_at: datetime,
    timezone: str,
    purpose: Purpose,
    confirm_url: str,
    *,
    note: str | None = None,
) -> EmailText:
    """The reminder e-mail; `note` (when given) is its first line, e.g. why it came by e-mail."""
    when = _clock(due_at, timezone)
    what = doses(items)
    prefix = {"initial": "", "followup": "Not answered yet: ", "snooze": "Again: "}[purpose]
    subject = f"{prefix}dosewise {when}: {what}"
    skip_url = f"{confirm_url}?action=skip"
    keep_away = _keep_away(items, due_at, timezone)
    lines = [
        *([note] if note else []),
        f"Time to take {what} ({when}).",
        *([keep_away] if keep_away else []),
    ]
    plain = "\n".join([*lines, "", f"Taken: {confirm_url}", f"Skipped: {skip_url}", "", "dosewise"])
    paragraphs = "".join(f"<p>{escape(line)}</p>" for line in lines)
    html = (
        f"<html><body>{paragraphs}"
        f'<p><a href="{escape(confirm_url)}">I took it</a> &middot; '
        f'<a href="{escape(skip_url)}">Skip this one</a></p>'
        "<p>dosewise</p></body></html>"
    )
    return EmailText(subject, plain, html)


def doses(items: Sequence[dict[str, Any]]) -> str:
    return " + ".join(f"{item.get('name') or item['supplement']} {item['dose']}" for item in items)


KEEP_AWAY = "Keep dairy away until"
_KEEP_AWAY_AT = re.compile(rf"{KEEP_AWAY} \d\d:\d\d\.")


def _keep_away(items: Sequence[dict[str, Any]], due_at: datetime, timezone: str) -> str | None:
    if not any(item.get("supplement") == "iron" for item in items):
        return None
    return _keep_away_from(due_at, timezone)


def _keep_away_from(taken_at: datetime, timezone: str) -> str:
    # real elapsed time: on a clock-change day "3 h later" is not 3 wall-clock hours
    return f"{KEEP_AWAY} {_clock(taken_at + IRON_DAIRY_GAP, timezone)}."


def keep_away_from_sending(body: str, sent_at: datetime, timezone: str) -> str:
    """`body` with its "Keep dairy away until HH:MM." counted from `sent_at`.

    The text is written when the message is queued, from the dose's planned time; a snooze, a
    follow-up or a retry goes out later, and the dose is taken when the message arrives, so
    the time to keep dairy away until is counted from the sending, in the person's zone.
    """
    if KEEP_AWAY not in body:
        return body
    try:
        fresh = _keep_away_from(sent_at, timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return body  # an unknown zone: the time as queued rather than a wrong one
    return _KEEP_AWAY_AT.sub(lambda _: fresh, body)


def same_text(sent: str, queued: str) -> bool:
    """Whether `sent` is `queued` as keep_away_from_sending may have changed it."""
    if sent == queued:
        return True
    return _KEEP_AWAY_AT.sub(KEEP_AWAY, sent) == _KEEP_AWAY_AT.sub(KEEP_AWAY, queued)


def _clock(instant: datetime, timezone: str) -> str:
    return instant.astimezone(ZoneInfo(timezone)).strftime("%H:%M")


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
