"""The notifier's real counterparts on loopback, as fixtures: the Twilio-compatible server and
an aiosmtpd SMTP server with the gateway that talks to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from notifier.email import SmtpConfig, SmtpEmailGateway
from tests.conftest import free_port
from tests.fakes.twilio_server import FakeTwilioServer
from tests.test_notifier_worker import Mailbox


@pytest.fixture
def twilio() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer() as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, SmtpEmailGateway]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield (
            mailbox,
            SmtpEmailGateway(
                SmtpConfig("127.0.0.1", port, starttls=False, sender="dosewise@dosewise.example")
            ),
        )
    finally:
        controller.stop()
