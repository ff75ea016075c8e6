"""The notifier's ports: what the service layer and the worker type against.

Adapters (Twilio, SMTP, console) live next to this module; nothing here imports a provider
library, so the tracker and the services may use the error vocabulary without pulling in
`twilio` or `smtplib`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal, Protocol, runtime_checkable

Channel = Literal["sms", "email", "console"]


class ErrorKind(StrEnum):
    """What the worker should do about a failed send."""

    RETRYABLE = "retryable"  # back off and try again while the message's window lasts
    PERMANENT = "permanent"  # never retry this message on this channel
    OPTED_OUT = "opted_out"  # the carrier says the person replied STOP: mark them opted out


@dataclass(frozen=True, slots=True)
class SendResult:
    """A message the provider accepted.

    `provider_id` is what the provider calls the message: Twilio's MessageSid, the e-mail
    Message-ID, or a console id. It is stored so that status callbacks and the settling
    sweeper can find the message again.
    """

    channel: Channel
    provider_id: str
    status: str
    num_segments: int | None = None


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One message as the provider lists it (for the sweeper that settles expired leases)."""

    provider_id: str
    to: str
    body: str
    status: str
    date_created: datetime | None


class SendError(Exception):
    """A send that failed, classified.

    `may_have_been_sent` is True when the request may have reached the provider before it
    failed (a read timeout, a connection dropped after the request went out, a 5xx): the
    provider may have queued the message, so before sending again the worker should ask
    `messages_sent_to` rather than risk a duplicate. `retry_after_s` is the wait the provider
    asked for (an HTTP Retry-After), when it said.
    """

    def __init__(
        self,
        kind: ErrorKind,
        detail: str,
        *,
        channel: Channel,
        code: int | None = None,
        http_status: int | None = None,
        may_have_been_sent: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.channel = channel
        self.code = code
        self.http_status = http_status
        self.may_have_been_sent = may_have_been_sent
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        return self.kind is ErrorKind.RETRYABLE

    def __repr__(self) -> str:
        return (
            f"SendError({self.kind.value}, channel={self.channel!r}, code={self.code!r}, "
            f"http_status={self.http_status!r}, detail={self.detail!r})"
        )


# Twilio error codes whose meaning decides what we do, whatever the HTTP status says.
# https://www.twilio.com/docs/api/errors : the one table; codes not listed fall back to the
# HTTP status (see classify_twilio_error). Also used for ErrorCode in status callbacks.
TWILIO_ERROR_KINDS: Final[Mapping[int, ErrorKind]] = MappingProxyType(
    {
        20429: ErrorKind.RETRYABLE,  # too many requests
        30001: ErrorKind.RETRYABLE,  # queue overflow
        30003: ErrorKind.RETRYABLE,  # unreachable destination handset
        30008: ErrorKind.RETRYABLE,  # unknown error
        21211: ErrorKind.PERMANENT,  # invalid 'To' phone number
        21614: ErrorKind.PERMANENT,  # 'To' number is not a valid mobile number
        30005: ErrorKind.PERMANENT,  # unknown destination handset
        30006: ErrorKind.PERMANENT,  # landline or unreachable carrier
        30007: ErrorKind.PERMANENT,  # carrier violation (filtered)
        21610: ErrorKind.OPTED_OUT,  # attempt to send to an unsubscribed recipient
    }
)


def classify_twilio_error(http_status: int | None, code: int | None) -> ErrorKind:
    """The Twilio code decides when we know it; otherwise 429 and 5xx retry, other 4xx don't."""
    if code is not None and code in TWILIO_ERROR_KINDS:
        return TWILIO_ERROR_KINDS[code]
    if http_status is None or http_status == 429 or http_status >= 500:
        return ErrorKind.RETRYABLE
    return ErrorKind.PERMANENT


def classify_smtp_reply(reply_code: int) -> ErrorKind:
    """RFC 5321: 4yz is a transient failure, 5yz a permanent one."""
    return ErrorKind.RETRYABLE if 400 <= reply_code < 500 else ErrorKind.PERMANENT


@runtime_checkable
class SmsGateway(Protocol):
    def send(
        self,
        to: str,
        body: str,
        *,
        status_callback: str | None = None,
        validity_period_s: int | None = None,
    ) -> SendResult:
        """Hand one SMS to the provider; raise SendError when it is not accepted."""
        ...

    def messages_sent_to(self, to: str, since: datetime) -> Sequence[SentMessage]:
        """Messages to `to` the provider has from `since` (aware datetime) on."""
        ...


@runtime_checkable
class AsyncSmsGateway(Protocol):
    async def send(
        self,
        to: str,
        body: str,
        *,
        status_callback: str | None = None,
        validity_period_s: int | None = None,
    ) -> SendResult: ...

    async def messages_sent_to(self, to: str, since: datetime) -> Sequence[SentMessage]: ...


@runtime_checkable
class EmailGateway(Protocol):
    def send(
        self,
        to: str,
        subject: str,
        text: str,
        html: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> SendResult:
        """Send one e-mail; the result's provider_id is its Message-ID."""
        ...
