"""Signing and TwiML for the tracker, through twilio's own RequestValidator and TwiML."""

from __future__ import annotations

import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from notifier.twilio_webhooks import (
    compute_signature,
    signature_is_valid,
    twilio_twiml_message,
    twiml_message,
)

TOKEN = "12345"
URL = "https://dosewise.example/twilio/sms"
FORM = {
    "MessageSid": "SM" + "1" * 32,
    "From": "+4520123456",
    "To": "+4599999999",
    "Body": "TAKEN",
}


def twilio_documented_signature(token: str, url: str, form: dict[str, str]) -> str:
    """Twilio's documented scheme, written out independently: HMAC-SHA1 over the URL followed
    by each field name and value, sorted by name; base64."""
    payload = url + "".join(name + form[name] for name in sorted(form))
    digest = hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def test_compute_signature_signs_as_twilio_documents() -> None:
    assert compute_signature(TOKEN, URL, FORM) == twilio_documented_signature(TOKEN, URL, FORM)


def test_a_signature_from_twilio_is_valid() -> None:
    assert signature_is_valid(TOKEN, URL, FORM, compute_signature(TOKEN, URL, FORM))


@pytest.mark.parametrize(
    ("token", "url", "form"),
    [
        ("other-token", URL, FORM),
        (TOKEN, "https://dosewise.example/twilio/status", FORM),
        (TOKEN, URL, {**FORM, "Body": "SKIP"}),
        (TOKEN, URL, {**FORM, "Extra": "1"}),
    ],
)
def test_anything_changed_is_not_valid(token: str, url: str, form: dict[str, str]) -> None:
    signature = compute_signature(TOKEN, URL, FORM)
    assert not signature_is_valid(token, url, form, signature)


@pytest.mark.parametrize("signature", [None, "", "garbage", "AAAA"])
def test_missing_or_forged_signatures_are_not_valid(signature: str | None) -> None:
    assert not signature_is_valid(TOKEN, URL, FORM, signature)


def test_the_default_port_may_or_may_not_be_in_the_url() -> None:
    # Twilio is inconsistent about :443 in what it signs; twilio's validator accepts both.
    signature = compute_signature(TOKEN, "https://dosewise.example:443/twilio/sms", FORM)
    assert signature_is_valid(TOKEN, URL, FORM, signature)


_URLS = st.sampled_from(
    [URL, "https://dosewise.example:443/twilio/sms", "http://127.0.0.1:8000/twilio/sms?x=1"]
)
_FORMS = st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=4)


@given(
    token=st.sampled_from([TOKEN, "other"]),
    signed_url=_URLS,
    url=_URLS,
    form=_FORMS,
    forged=st.none() | st.text(max_size=30),
)
def test_the_check_answers_as_twilios_own_validator(
    token: str, signed_url: str, url: str, form: dict[str, str], forged: str | None
) -> None:
    """The one-HMAC shortcut for the URL as configured changes no answer."""
    signature = forged if forged is not None else compute_signature(TOKEN, signed_url, form)
    expected = bool(signature) and RequestValidator(token).validate(url, form, signature)
    assert signature_is_valid(token, url, form, signature) == expected


def test_repeated_fields_are_all_signed() -> None:
    pairs = [("Body", "hi"), ("MediaUrl", "b"), ("MediaUrl", "a")]
    # Each value of a repeated name, sorted, after the name.
    payload = URL + "Body" + "hi" + "MediaUrl" + "a" + "MediaUrl" + "b"
    digest = hmac.new(TOKEN.encode(), payload.encode(), hashlib.sha1).digest()
    signature = compute_signature(TOKEN, URL, pairs)
    assert signature == base64.b64encode(digest).decode()
    assert signature_is_valid(TOKEN, URL, pairs, signature)
    assert not signature_is_valid(TOKEN, URL, pairs[:2], signature)


def test_twiml_with_a_message() -> None:
    xml = twiml_message("Iron logged at 11:42. Dairy, calcium & medicines from 14:42.")
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    [message] = list(root)
    assert message.tag == "Message"
    assert message.text == "Iron logged at 11:42. Dairy, calcium & medicines from 14:42."


def test_twiml_escapes_what_a_person_wrote() -> None:
    root = ET.fromstring(twiml_message("<Redirect>http://evil</Redirect>"))
    assert [child.tag for child in root] == ["Message"]
    assert root[0].text == "<Redirect>http://evil</Redirect>"


def test_twiml_without_a_message_is_an_empty_response() -> None:
    assert twiml_message(None) == '<?xml version="1.0" encoding="UTF-8"?><Response />'


@given(st.none() | st.text() | st.text(alphabet="<>&\"'; amp;lt"))
def test_twiml_is_what_twilios_own_builder_writes(text: str | None) -> None:
    assert twiml_message(text) == twilio_twiml_message(text)
