"""The console channel: what dosewise uses when no Twilio or SMTP credentials are set.

It prints each message as a phone or a mail client would show it and reports it sent on
channel "console", so the demo and a fresh install run the whole loop and nothing is dropped:
it accepts every message, whatever its length or recipient.
"""

from __future__ import annotations

import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from notifier.ports import ErrorKind, SendError, SendResult, SentMessage
from notifier.segments import count_segments

_WIDTH = 60


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _console_id() -> str:
    return f"console-{uuid.uuid4().hex}"


@dataclass
class ConsoleChannel:
    """Prints to `stream` (stdout, looked up at each print, when None). Thread-safe.

    `now` dates what it prints for `messages_sent_to`; the demo passes its simulated clock.
    """

    stream: TextIO | None = None
    now: Callable[[], datetime] = _utc_now
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _sent: list[SentMessage] = field(default_factory=list, repr=False)

    def _write(self, text: str) -> None:
        out = self.stream if self.stream is not None else sys.stdout
        try:
            with self._lock:
                out.write(text)
                out.flush()
        except (OSError, ValueError) as exc:  # a closed stream: say so, never lose it quietly
            raise SendError(
                ErrorKind.RETRYABLE, f"console output failed: {exc}", channel="console"
            ) from exc

    def _remember(self, provider_id: str, to: str, body: str) -> None:
        message = SentMessage(
            provider_id=provider_id,
            to=to,
            body=body,
            status="sent",
            date_created=self.now(),
        )
        with self._lock:
            self._sent.append(message)

    def print_sms(self, to: str, body: str) -> SendResult:
        count = count_segments(body)
        noun = "segment" if count.segments == 1 else "segments"
        # Wrapped like a phone screen; the sender's own line breaks are kept.
        lines = [line for para in body.split("\n") for line in textwrap.wrap(para, _WIDTH) or [""]]
        framed = "\n".join(f"| {line}" for line in lines)
        self._write(
            f"+-- SMS to {to} " + "-" * max(3, _WIDTH - 12 - len(to)) + "\n"
            f"{framed}\n"
            f"+-- {count.segments} {noun}, {count.encoding}\n"
        )
        provider_id = _console_id()
        self._remember(provider_id, to, body)
        return SendResult("console", provider_id, "sent", count.segments)

    def print_email(
        self,
        to: str,
        subject: str,
        text: str,
        headers: Mapping[str, str] | None = None,
    ) -> SendResult:
        extra = "".join(f"{name}: {value}\n" for name, value in (headers or {}).items())
        self._write(
            "=" * _WIDTH + "\n"
            f"To: {to}\nSubject: {subject}\n{extra}" + "-" * _WIDTH + "\n"
            f"{text.rstrip()}\n" + "=" * _WIDTH + "\n"
        )
        provider_id = _console_id()
        self._remember(provider_id, to, f"{subject}\n\n{text}")
        return SendResult("console", provider_id, "sent", None)

    def sent(self) -> list[SentMessage]:
        with self._lock:
            return list(self._sent)


class ConsoleSmsGateway:
    """SmsGateway that prints. Listing knows only what this process printed."""

    def __init__(self, channel: ConsoleChannel | None = None) -> None:
        self.channel = channel or ConsoleChannel()

    def send(
        self,
        to: str,
        body: str,
        *,
        status_callback: str | None = None,
        validity_period_s: int | None = None,
    ) -> SendResult:
        return self.channel.print_sms(to, body)

    def messages_sent_to(self, to: str, since: datetime) -> Sequence[SentMessage]:
        return [
            message
            for message in self.channel.sent()
            if message.to == to and (message.date_created is None or message.date_created >= since)
        ]


class ConsoleEmailGateway:
    """EmailGateway that prints the plain-text part, as a text mail client shows it."""

    def __init__(self, channel: ConsoleChannel | None = None) -> None:
        self.channel = channel or ConsoleChannel()

    def send(
        self,
        to: str,
        subject: str,
        text: str,
        html: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> SendResult:
        return self.channel.print_email(to, subject, text, headers)
