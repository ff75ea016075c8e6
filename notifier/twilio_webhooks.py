"""What the tracker needs from twilio, so that only the notifier package imports it.

Signatures are twilio's own (RequestValidator): HMAC-SHA1 of the full URL Twilio called plus
the form fields sorted by name, base64. The tracker passes DOSEWISE_PUBLIC_URL + path as the
URL, because behind a proxy the URL it sees is not the one Twilio signed.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

SIGNATURE_HEADER = "X-Twilio-Signature"
TWIML_CONTENT_TYPE = "application/xml"

FormParams = Mapping[str, str] | Iterable[tuple[str, str]]


class _MultiDict(dict[str, list[str]]):
    """Repeated form fields (MediaUrl0, ... are single, but nothing stops repeats) signed as
    Twilio does: every value of a name. RequestValidator reads `getall` when it exists."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def _as_multidict(params: FormParams) -> _MultiDict:
    items = params.items() if isinstance(params, Mapping) else params
    collected = _MultiDict()
    for name, value in items:
        collected.setdefault(str(name), []).append(str(value))
    return collected


def compute_signature(auth_token: str, url: str, form_params: FormParams) -> str:
    """The X-Twilio-Signature Twilio would send for this POST."""
    validator = RequestValidator(auth_token)
    return str(validator.compute_signature(url, _as_multidict(form_params)))


def signature_is_valid(
    auth_token: str, url: str, form_params: FormParams, signature: str | None
) -> bool:
    """True when `signature` is Twilio's for this URL and form; False when missing or wrong."""
    if not signature or not auth_token:
        return False
    validator = RequestValidator(auth_token)
    params = _as_multidict(form_params)
    try:
        # the URL as configured first: one HMAC per genuine webhook; then twilio's own check,
        # which tries the URL with and without its port (two more) before it says no
        expected = str(validator.compute_signature(url, params))
        if hmac.compare_digest(expected.encode(), signature.encode("utf-8", "surrogateescape")):
            return True
        return bool(validator.validate(url, params, signature))
    except (ValueError, UnicodeError):  # a URL or value that cannot be parsed is not signed
        return False


_TWIML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>'
_EMPTY_TWIML = _TWIML_HEAD + "<Response />"


def twiml_message(text: str | None) -> str:
    """A TwiML answer: one <Message> with `text`, or an empty <Response/> for no reply.

    Written out rather than built by MessagingResponse (an ElementTree per reply, a tenth of
    the tracker's CPU per webhook); the same characters, which the tests compare with it."""
    if text is None:
        return _EMPTY_TWIML
    if not text:
        return _TWIML_HEAD + "<Response><Message /></Response>"
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"{_TWIML_HEAD}<Response><Message>{escaped}</Message></Response>"


def twilio_twiml_message(text: str | None) -> str:
    """twilio's own rendering of twiml_message's answer (the reference the tests hold it to)."""
    response = MessagingResponse()
    if text is not None:
        response.message(text)
    return str(response.to_xml())
