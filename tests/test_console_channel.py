"""The console channel: printed as a phone or mail client shows it, recorded, never dropped."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta

import pytest

from notifier.console import ConsoleChannel, ConsoleEmailGateway, ConsoleSmsGateway
from notifier.ports import EmailGateway, ErrorKind, SendError, SmsGateway

TO = "+4520123456"
BODY = "dosewise 11:30: iron 18 mg + vitamin C 250 mg. Keep dairy away until 14:30."


def test_an_sms_is_printed_framed_with_its_segment_count() -> None:
    out = io.StringIO()
    result = ConsoleSmsGateway(ConsoleChannel(out)).send(TO, BODY, status_callback="ignored")

    printed = out.getvalue()
    assert f"SMS to {TO}" in printed
    assert "1 segment, GSM-7" in printed
    assert " ".join(line.removeprefix("| ") for line in printed.splitlines()[1:-1]) == BODY
    assert result.channel == "console"
    assert result.status == "sent"
    assert result.num_segments == 1
    assert result.provider_id.startswith("console-")


def test_long_and_odd_texts_are_printed_whole() -> None:
    out = io.StringIO()
    channel = ConsoleChannel(out)
    long_text = "word " * 100
    assert channel.print_sms(TO, long_text).num_segments == 4
    assert channel.print_sms(TO, "").num_segments == 1
    assert channel.print_sms(TO, "selenium 100 µg\nline two").num_segments == 1
    printed = out.getvalue()
    assert printed.count("word") == 100
    assert "| selenium 100 µg\n| line two\n" in printed
    assert "UCS-2" in printed
    assert len(channel.sent()) == 3


def test_stdout_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleSmsGateway().send(TO, "hello")
    assert "| hello" in capsys.readouterr().out


def test_an_email_is_printed_with_its_headers_and_text() -> None:
    out = io.StringIO()
    gateway = ConsoleEmailGateway(ConsoleChannel(out))
    result = gateway.send(
        "ana@example.com", "Iron now", "Take iron.\nConfirm: http://x/confirm/t", "<p>html</p>"
    )
    printed = out.getvalue()
    assert "To: ana@example.com\nSubject: Iron now\n" in printed
    assert "Take iron.\nConfirm: http://x/confirm/t\n" in printed
    assert "<p>" not in printed  # shown as a text mail client shows it
    assert (result.channel, result.status) == ("console", "sent")


def test_the_console_gateways_fill_the_ports() -> None:
    channel = ConsoleChannel(io.StringIO())
    assert isinstance(ConsoleSmsGateway(channel), SmsGateway)
    assert isinstance(ConsoleEmailGateway(channel), EmailGateway)


def test_listing_knows_what_was_printed_to_a_number_since_a_time() -> None:
    now = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
    channel = ConsoleChannel(io.StringIO(), now=lambda: now)
    sms = ConsoleSmsGateway(channel)
    first = sms.send(TO, "one")
    sms.send("+4520000001", "other")
    assert [m.provider_id for m in sms.messages_sent_to(TO, now)] == [first.provider_id]
    assert sms.messages_sent_to(TO, now + timedelta(seconds=1)) == []


def test_a_closed_stream_is_an_error_not_a_silent_drop() -> None:
    out = io.StringIO()
    out.close()
    with pytest.raises(SendError) as caught:
        ConsoleSmsGateway(ConsoleChannel(out)).send(TO, "hello")
    assert caught.value.kind is ErrorKind.RETRYABLE


def test_concurrent_prints_do_not_interleave() -> None:
    out = io.StringIO()
    sms = ConsoleSmsGateway(ConsoleChannel(out))

    def send_some(n: int) -> None:
        for i in range(25):
            sms.send(TO, f"thread {n} message {i}")

    threads = [threading.Thread(target=send_some, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 8 * 25 * 3
    for start in range(0, len(lines), 3):
        frame = lines[start : start + 3]
        assert frame[0].startswith("+-- SMS to")
        assert frame[1].startswith("| thread")
        assert frame[2].startswith("+-- 1 segment")
