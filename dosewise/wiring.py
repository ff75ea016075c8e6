"""The composition root: settings from the environment become an engine and units of work.

Only here (and in the command modules it serves) do the store's errors become UserErrors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dosewise.errors import UserError
from dosewise.settings import Settings
from reports.ports import AdherenceQueries
from services.admin_sessions import AdminStore
from services.health import DatabaseProbe
from services.ports import UnitOfWork
from store.admin_sessions import SqlAdminStore
from store.engine import Engine, create_engine, session_factory
from store.errors import StoreError
from store.health import SqlDatabaseProbe
from store.migrate import require_current
from store.reports import SqlAdherenceQueries
from store.unit_of_work import SqlUnitOfWork

if TYPE_CHECKING:
    from notifier.console import ConsoleEmailGateway, ConsoleSmsGateway
    from notifier.email import SmtpEmailGateway
    from notifier.sms import AsyncTwilioSmsGateway

UnitOfWorkFactory = Callable[[], UnitOfWork]


@dataclass(frozen=True)
class Database:
    """The store's adapters on one engine (one pool): what the services are given."""

    unit_of_work: UnitOfWorkFactory
    adherence: AdherenceQueries
    probe: DatabaseProbe  # does the database take a write now (/healthz)
    admin: AdminStore  # the dashboard's sessions, sign-in limits and audit log


def load_settings() -> Settings:
    try:
        return Settings.from_environment()
    except ValueError as error:
        raise UserError(str(error)) from None


@contextmanager
def store_errors_as_user_errors() -> Iterator[None]:
    try:
        yield
    except StoreError as error:
        raise UserError(str(error)) from None


@contextmanager
def database(
    settings: Settings,
    *,
    pool_size: int | None = None,
    pre_ping: bool = True,
    check_now: bool = True,
) -> Iterator[Database]:
    """Units of work and the report's queries on the configured database, which must already
    have the current schema. `check_now=False`: no look at the database here (a tracker
    worker starting while it is away: the tracker checked it once when it started)."""
    with store_errors_as_user_errors():
        engine = create_engine(settings.database_url, pool_size=pool_size, pre_ping=pre_ping)
        try:
            if check_now:
                require_current(engine)
            yield database_on(engine)
        finally:
            engine.dispose()


def database_on(engine: Engine) -> Database:
    sessions = session_factory(engine)
    return Database(
        lambda: SqlUnitOfWork(sessions),
        SqlAdherenceQueries(engine),
        SqlDatabaseProbe(engine),
        SqlAdminStore(engine),
    )


def sms_gateway(
    settings: Settings, *, in_flight: int = 100
) -> AsyncTwilioSmsGateway | ConsoleSmsGateway:
    """Twilio (async client, `in_flight` connections) when credentials are set; otherwise the
    console channel."""
    # imported here: twilio and aiohttp take a while to load, and only the notifier needs them
    from notifier.console import ConsoleSmsGateway
    from notifier.sms import AsyncTwilioSmsGateway, TwilioConfig

    if not settings.twilio_configured:
        return ConsoleSmsGateway()
    assert settings.twilio_account_sid and settings.twilio_auth_token  # twilio_configured
    try:
        config = TwilioConfig(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            from_number=settings.twilio_from_number,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            api_base_url=settings.twilio_api_base_url,
        )
    except ValueError as error:
        raise UserError(str(error)) from None
    return AsyncTwilioSmsGateway(config, pool_size=in_flight)


def email_gateway(settings: Settings) -> SmtpEmailGateway | ConsoleEmailGateway:
    """SMTP when SMTP_HOST is set; otherwise the console channel."""
    from notifier.console import ConsoleEmailGateway
    from notifier.email import SmtpConfig, SmtpEmailGateway

    if settings.smtp_host is None:
        return ConsoleEmailGateway()
    try:
        config = SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            sender=settings.email_from,
        )
    except ValueError as error:
        raise UserError(str(error)) from None
    return SmtpEmailGateway(config)


def sms_sender(settings: Settings) -> str:
    """The rate limit's key: one budget per sending number or Messaging Service."""
    if not settings.twilio_configured:
        return "console"
    return settings.twilio_messaging_service_sid or settings.twilio_from_number or "twilio"


def sms_rate(settings: Settings) -> float:
    """DOSEWISE_SMS_RATE protects a Twilio sender's queue: console "SMS" have none (0: off)."""
    return settings.sms_rate if settings.twilio_configured else 0.0
