"""The SMTP e-mail adapter: smtplib, STARTTLS and login when configured.

One connection per message: reminders are few per person per day, and a fresh connection
never trips over a server that dropped an idle one.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Final

from notifier.ports import ErrorKind, SendError, SendResult, classify_smtp_reply

DEFAULT_TIMEOUT_S: Final = 15.0


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    sender: str = "dosewise@localhost"
    timeout_s: float = DEFAULT_TIMEOUT_S
    # None: the system's trusted CAs. Tests pass a context that trusts their own certificate.
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)
    # The EHLO name; None lets smtplib use this machine's FQDN.
    local_hostname: str | None = None

    def __post_init__(self) -> None:
        if (self.username is None) != (self.password is None):
            raise ValueError("set both SMTP_USERNAME and SMTP_PASSWORD, or neither")
        if self.username is not None and not self.starttls:
            # smtplib would send the password in the clear; refuse rather than leak it.
            raise ValueError("SMTP login needs SMTP_STARTTLS=true")


def build_message(
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """A multipart/alternative message (plain text first, HTML preferred) with a Message-ID."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    # after the parts: setting content drops or moves Content-* headers (Content-Language)
    for name, value in (headers or {}).items():
        message[name] = value
    return message


_HTML_LANG = re.compile(r'<html lang="([A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*)"')


def language_headers(html: str | None) -> dict[str, str]:
    """Content-Language for an e-mail whose HTML part says its language (`<html lang="da">`),
    so mail programs read it aloud and offer translation in the right language."""
    found = _HTML_LANG.match(html) if html else None
    return {"Content-Language": found.group(1)} if found else {}


def _refused_code(refused: Mapping[str, tuple[int, bytes]]) -> int:
    # One recipient per message; with several, the worst (highest) reply decides.
    return max(code for code, _ in refused.values())


def smtp_error(exc: BaseException) -> SendError:
    """Classify what smtplib raised: 4xx and connection trouble retry, 5xx do not."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code = _refused_code(exc.recipients)
        return SendError(
            classify_smtp_reply(code),
            f"recipient refused: {exc.recipients}",
            channel="email",
            code=code,
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        code = int(exc.smtp_code)
        # smtplib reports -1 when the server said nothing it could parse: treat as a glitch.
        kind = classify_smtp_reply(code) if code >= 400 else ErrorKind.RETRYABLE
        reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        return SendError(kind, f"SMTP {code} {reply}".strip(), channel="email", code=code)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        # The server lacks STARTTLS or AUTH that the configuration asks for: retrying won't help.
        return SendError(ErrorKind.PERMANENT, f"SMTP server: {exc}", channel="email")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SendError(ErrorKind.PERMANENT, f"SMTP certificate: {exc}", channel="email")
    # SMTPServerDisconnected, refused or reset connections, timeouts, other TLS trouble. A
    # disconnect after DATA may have delivered it; e-mail tolerates a rare duplicate.
    return SendError(
        ErrorKind.RETRYABLE,
        f"SMTP connection failed: {type(exc).__name__}: {exc}",
        channel="email",
        may_have_been_sent=isinstance(exc, smtplib.SMTPServerDisconnected),
    )


class SmtpEmailGateway:
    """EmailGateway over smtplib."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def _deliver(self, message: EmailMessage) -> None:
        config = self.config
        with smtplib.SMTP(
            config.host,
            config.port,
            local_hostname=config.local_hostname,
            timeout=config.timeout_s,
        ) as smtp:
            smtp.ehlo()
            if config.starttls:
                smtp.starttls(context=config.ssl_context or ssl.create_default_context())
                smtp.ehlo()
            if config.username is not None and config.password is not None:
                smtp.login(config.username, config.password)
            smtp.send_message(message)

    def send(
        self,
        to: str,
        subject: str,
        text: str,
        html: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> SendResult:
        message = build_message(self.config.sender, to, subject, text, html, headers)
        try:
            self._deliver(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise smtp_error(exc) from exc
        return SendResult("email", str(message["Message-ID"]), "sent", None)
