"""The SMTP adapter in a real SMTP conversation with aiosmtpd on loopback."""

from __future__ import annotations

import email
import email.policy
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from notifier.email import SmtpConfig, SmtpEmailGateway, language_headers
from notifier.ports import EmailGateway, ErrorKind, SendError
from tests.conftest import free_port

SENDER = "dosewise@dosewise.example"
TO = "ana@example.com"
TEXT = "Time for iron 18 mg + vitamin C 250 mg.\nConfirm: http://127.0.0.1:8000/confirm/abc"
HTML = '<p>Time for <b>iron 18 mg</b>. <a href="http://127.0.0.1:8000/confirm/abc">Taken</a></p>'


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps what it receives and answers as told."""

    rcpt_answer: str = "250 OK"
    data_answer: str = "250 OK queued"
    received: list[tuple[Any, Any]] = field(default_factory=list)  # (session, envelope)
    logins: list[tuple[str, bytes]] = field(default_factory=list)  # (mechanism, login)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.rcpt_answer.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self.rcpt_answer

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_answer.startswith("250"):
            self.received.append((session, envelope))
        return self.data_answer

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((mechanism, auth_data.login))
        ok = (auth_data.login, auth_data.password) == (b"dosewise", b"s3cret")
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535

    def message(self) -> EmailMessage:
        [(_, envelope)] = self.received
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def plain_server(mailbox: Mailbox) -> Iterator[Controller]:
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def tls_server(mailbox: Mailbox, certificate: tuple[Path, Path]) -> Iterator[Controller]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(*certificate)
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_context,
        require_starttls=True,
        authenticator=mailbox.authenticate,
        auth_required=True,
        auth_exclude_mechanism=["PLAIN"],  # so smtplib must speak AUTH LOGIN
    )
    controller.start()
    yield controller
    controller.stop()


def plain_gateway(server: Controller) -> SmtpEmailGateway:
    return SmtpEmailGateway(
        SmtpConfig(host="127.0.0.1", port=server.port, starttls=False, sender=SENDER, timeout_s=5)
    )


def tls_gateway(server: Controller, cert: Path, password: str = "s3cret") -> SmtpEmailGateway:
    return SmtpEmailGateway(
        SmtpConfig(
            host="127.0.0.1",
            port=server.port,
            username="dosewise",
            password=password,
            starttls=True,
            sender=SENDER,
            timeout_s=5,
            ssl_context=ssl.create_default_context(cafile=str(cert)),
        )
    )


def test_plain_send_delivers_text_and_html_alternatives(
    plain_server: Controller, mailbox: Mailbox
) -> None:
    gateway = plain_gateway(plain_server)
    assert isinstance(gateway, EmailGateway)
    result = gateway.send(
        TO, "dosewise 11:30: iron", TEXT, HTML, headers={"X-Dosewise-Reminder": "42"}
    )

    assert (result.channel, result.status) == ("email", "sent")
    [(_, envelope)] = mailbox.received
    assert (envelope.mail_from, envelope.rcpt_tos) == (SENDER, [TO])
    message = mailbox.message()
    assert message["From"] == SENDER
    assert message["To"] == TO
    assert message["Subject"] == "dosewise 11:30: iron"
    assert message["Message-ID"] == result.provider_id
    assert result.provider_id.endswith("@dosewise.example>")
    assert message["Date"] is not None
    assert message["X-Dosewise-Reminder"] == "42"
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n").strip() == TEXT
    assert html.get_content().strip() == HTML
    # The HTML part comes last: mail clients show the last alternative they understand.
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]


def test_a_danish_email_arrives_with_its_language_and_letters(
    plain_server: Controller, mailbox: Mailbox
) -> None:
    html = '<html lang="da"><body><p>Ingen mælkeprodukter før 14:30.</p></body></html>'
    plain_gateway(plain_server).send(
        TO,
        "dosewise kl. 11:30: jern 18 mg",
        "Ingen mælkeprodukter før 14:30.",
        html,
        headers=language_headers(html),
    )
    message = mailbox.message()
    assert message["Content-Language"] == "da"  # on the message, not moved into a part
    assert message["Subject"] == "dosewise kl. 11:30: jern 18 mg"
    plain, page = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and page is not None
    assert plain.get_content().strip() == "Ingen mælkeprodukter før 14:30."
    assert page.get_content().strip() == html


@pytest.mark.parametrize(
    ("html", "headers"),
    [
        ('<html lang="da"><body></body></html>', {"Content-Language": "da"}),
        ('<html lang="en-GB"><body></body></html>', {"Content-Language": "en-GB"}),
        ("<html><body></body></html>", {}),
        ('<html lang="da\r\nBcc: x@y.z"><body></body></html>', {}),
        (None, {}),
    ],
)
def test_the_language_header_comes_from_the_html_lang(
    html: str | None, headers: dict[str, str]
) -> None:
    assert language_headers(html) == headers


def test_text_only_when_no_html(plain_server: Controller, mailbox: Mailbox) -> None:
    plain_gateway(plain_server).send(TO, "subject", "just text")
    message = mailbox.message()
    assert message.get_content_type() == "text/plain"
    assert message.get_content().strip() == "just text"


def test_starttls_and_auth_login(
    tls_server: Controller, mailbox: Mailbox, certificate: tuple[Path, Path]
) -> None:
    result = tls_gateway(tls_server, certificate[0]).send(TO, "subject", TEXT, HTML)

    assert mailbox.logins == [("LOGIN", b"dosewise")]
    [(session, envelope)] = mailbox.received
    assert session.ssl is not None  # the message itself travelled inside TLS
    assert session.authenticated
    assert envelope.rcpt_tos == [TO]
    assert mailbox.message()["Message-ID"] == result.provider_id


def test_a_wrong_password_is_permanent(
    tls_server: Controller, mailbox: Mailbox, certificate: tuple[Path, Path]
) -> None:
    with pytest.raises(SendError) as caught:
        tls_gateway(tls_server, certificate[0], password="wrong").send(TO, "s", TEXT)
    assert (caught.value.kind, caught.value.code) == (ErrorKind.PERMANENT, 535), caught.value
    assert mailbox.received == []


def test_an_untrusted_certificate_is_permanent(tls_server: Controller) -> None:
    gateway = SmtpEmailGateway(
        SmtpConfig(
            host="127.0.0.1",
            port=tls_server.port,
            username="dosewise",
            password="s3cret",
            sender=SENDER,
            timeout_s=5,
        )
    )
    with pytest.raises(SendError) as caught:
        gateway.send(TO, "s", TEXT)
    assert caught.value.kind is ErrorKind.PERMANENT
    assert "certificate" in caught.value.detail


@pytest.mark.parametrize(
    ("rcpt_answer", "data_answer", "kind", "code"),
    [
        ("550 5.1.1 No such user", "250 OK", ErrorKind.PERMANENT, 550),
        ("451 4.3.0 Try again later", "250 OK", ErrorKind.RETRYABLE, 451),
        ("250 OK", "554 5.7.1 Rejected as spam", ErrorKind.PERMANENT, 554),
        ("250 OK", "452 4.3.1 Insufficient storage", ErrorKind.RETRYABLE, 452),
    ],
)
def test_smtp_replies_are_classified(
    plain_server: Controller,
    mailbox: Mailbox,
    rcpt_answer: str,
    data_answer: str,
    kind: ErrorKind,
    code: int,
) -> None:
    mailbox.rcpt_answer, mailbox.data_answer = rcpt_answer, data_answer
    with pytest.raises(SendError) as caught:
        plain_gateway(plain_server).send(TO, "s", TEXT)
    assert (caught.value.kind, caught.value.code, caught.value.channel) == (kind, code, "email")


def test_an_unreachable_server_is_retryable() -> None:
    gateway = SmtpEmailGateway(
        SmtpConfig(host="127.0.0.1", port=free_port(), starttls=False, timeout_s=2)
    )
    with pytest.raises(SendError) as caught:
        gateway.send(TO, "s", TEXT)
    assert caught.value.kind is ErrorKind.RETRYABLE
    assert not caught.value.may_have_been_sent


def test_a_password_is_never_sent_without_tls() -> None:
    with pytest.raises(ValueError, match="STARTTLS"):
        SmtpConfig(host="h", username="u", password="p", starttls=False)
    with pytest.raises(ValueError, match="both"):
        SmtpConfig(host="h", username="u")
