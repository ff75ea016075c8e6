"""`dosewise tracker [--host H] [--port P]`: the HTTP service in the foreground (uvicorn)."""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI

from dosewise.settings import Settings
from dosewise.wiring import UnitOfWorkFactory, database, load_settings
from notifier import twilio_webhooks
from tracker.app import Clock, TwilioWebhooks, create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

log = logging.getLogger("dosewise.tracker")


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser("tracker", help="run the tracker (webhooks, confirm links)")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address (default {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    parser.set_defaults(handler=run)


def tracker_app(settings: Settings, uow_factory: UnitOfWorkFactory, clock: Clock) -> FastAPI:
    """The tracker with twilio's signature check and TwiML plugged in (only here and in the
    notifier may twilio be imported)."""
    twilio = TwilioWebhooks(twilio_webhooks.signature_is_valid, twilio_webhooks.twiml_message)
    return create_app(settings, uow_factory, clock, twilio=twilio)


def _now() -> datetime:
    return datetime.now(UTC)


def run(arguments: argparse.Namespace) -> int:
    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if settings.twilio_auth_token is None:
        log.warning("TWILIO_AUTH_TOKEN is not set: every Twilio webhook is refused with 403")
    with database(settings) as unit_of_work:
        # the outermost layer owns the clock; the use cases are given its readings
        app = tracker_app(settings, unit_of_work, _now)
        uvicorn.run(app, host=arguments.host, port=arguments.port, log_level="info")
    return 0
