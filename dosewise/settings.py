"""The environment of the contract, read once at start-up by the composition root."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from schemas.languages import DEFAULT_LANGUAGE, LANGUAGES


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///dosewise.db"
    public_url: str = "http://127.0.0.1:8000"
    admin_token: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    email_from: str = "dosewise@localhost"
    # SMS per second per sender, held by all notifier processes together; 0: no limit
    sms_rate: float = 0.0
    # where each tracker worker keeps the webhooks the database cannot take (tracker.spool),
    # and its bounds: megabytes per worker (0: keep none, answer 503) and the oldest's age
    spool_dir: str = "dosewise-spool"
    spool_max_mb: float = 64.0
    spool_max_age_hours: float = 24.0
    # the language of every text an admin reads: reports, the dashboard, `people` output
    language: str = DEFAULT_LANGUAGE

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        port = text("SMTP_PORT")
        if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"SMTP_PORT must be a port number (1-65535), not {port!r}")
        sms_rate = _rate(text("DOSEWISE_SMS_RATE"))
        spool_max_mb = _amount("DOSEWISE_SPOOL_MAX_MB", text("DOSEWISE_SPOOL_MAX_MB"), 64.0)
        spool_max_age = _amount(
            "DOSEWISE_SPOOL_MAX_AGE_HOURS", text("DOSEWISE_SPOOL_MAX_AGE_HOURS"), 24.0
        )
        if text("TWILIO_ACCOUNT_SID") and not text("TWILIO_AUTH_TOKEN"):
            # else the notifier would quietly "send" every SMS to its console
            raise ValueError(
                "TWILIO_ACCOUNT_SID is set but TWILIO_AUTH_TOKEN is not: set both to send SMS "
                "through Twilio, or neither to print them"
            )
        return cls(
            database_url=_database_url(text("DOSEWISE_DATABASE_URL"), cls.database_url),
            public_url=_base_url(
                "DOSEWISE_PUBLIC_URL", text("DOSEWISE_PUBLIC_URL"), cls.public_url
            ),
            admin_token=text("DOSEWISE_ADMIN_TOKEN"),
            twilio_account_sid=text("TWILIO_ACCOUNT_SID"),
            twilio_auth_token=text("TWILIO_AUTH_TOKEN"),
            twilio_from_number=text("TWILIO_FROM_NUMBER"),
            twilio_messaging_service_sid=text("TWILIO_MESSAGING_SERVICE_SID"),
            twilio_api_base_url=_base_url(
                "TWILIO_API_BASE_URL", text("TWILIO_API_BASE_URL"), cls.twilio_api_base_url
            ),
            smtp_host=text("SMTP_HOST"),
            smtp_port=int(port) if port else cls.smtp_port,
            smtp_username=text("SMTP_USERNAME"),
            smtp_password=text("SMTP_PASSWORD"),
            smtp_starttls=_switch("SMTP_STARTTLS", text("SMTP_STARTTLS"), default=True),
            email_from=text("DOSEWISE_EMAIL_FROM") or cls.email_from,
            sms_rate=sms_rate,
            spool_dir=text("DOSEWISE_SPOOL_DIR") or cls.spool_dir,
            spool_max_mb=spool_max_mb,
            spool_max_age_hours=spool_max_age,
            language=_language(text("DOSEWISE_LANGUAGE")),
        )

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def smtp_configured(self) -> bool:
        return self.smtp_host is not None


# what SQLAlchemy takes for a URL: a dialect name, "://", then the rest
_DATABASE_URL = re.compile(r"[A-Za-z][\w+.-]*://.*", re.DOTALL)


def _database_url(value: str | None, default: str) -> str:
    if value is None:
        return default
    if not _DATABASE_URL.fullmatch(value):  # not echoed: it may hold a password
        raise ValueError(
            "DOSEWISE_DATABASE_URL is not a database URL: write one such as "
            "sqlite:///dosewise.db or postgresql+psycopg://user@host:5432/dosewise"
        )
    return value


def _base_url(name: str, value: str | None, default: str) -> str:
    """An http(s) URL with a host (a path prefix allowed, for a proxy), without its last /:
    signatures and links are made by appending paths to it, so a query, a fragment or user
    info (which Twilio does not sign as written, and which would end up inside every link)
    is refused."""
    if value is None:
        return default
    shown = re.sub(r"//[^/?#]*@", "//***@", value)  # user info may hold a password
    refused = f"{name} must be an http:// or https:// URL with a host, not {shown!r}"
    try:
        parts = urlsplit(value)
        host, _port = parts.hostname, parts.port  # a port that is no number raises here
    except ValueError:
        raise ValueError(refused) from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(refused)
    extra = [
        what
        for what, present in (
            ("query", "?" in value),
            ("fragment", "#" in value),
            ("user info", "@" in parts.netloc),
        )
        if present
    ]
    if extra:
        raise ValueError(
            f"{name} must be an http:// or https:// URL with a host and no "
            f"{' or '.join(extra)}, not {shown!r}"
        )
    return value.rstrip("/")


_ON, _OFF = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _switch(name: str, value: str | None, *, default: bool) -> bool:
    if value is None:
        return default
    if value.lower() not in _ON | _OFF:
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value.lower() in _ON


def _rate(value: str | None) -> float:
    """DOSEWISE_SMS_RATE: messages per second, 0 or unset for no limit."""
    if value is None:
        return 0.0
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not (math.isfinite(rate) and rate >= 0):
        raise ValueError(f"DOSEWISE_SMS_RATE must be messages per second (0: off), not {value!r}")
    return rate


def _amount(name: str, value: str | None, default: float) -> float:
    """A number of at least 0 (the spool's bounds)."""
    if value is None:
        return default
    try:
        amount = float(value)
    except ValueError:
        amount = -1.0
    if not (math.isfinite(amount) and amount >= 0):
        raise ValueError(f"{name} must be a number of at least 0, not {value!r}")
    return amount


def _language(value: str | None) -> str:
    """DOSEWISE_LANGUAGE: one of the languages dosewise writes, in any case ("DA" is "da")."""
    if value is None:
        return DEFAULT_LANGUAGE
    if value.lower() not in LANGUAGES:
        raise ValueError(f"DOSEWISE_LANGUAGE must be one of {', '.join(LANGUAGES)}, not {value!r}")
    return value.lower()
