"""The environment of the contract, read once at start-up by the composition root."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass


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

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        port = text("SMTP_PORT")
        if port is not None and not port.isdigit():
            raise ValueError(f"SMTP_PORT must be a port number, not {port!r}")
        sms_rate = _rate(text("DOSEWISE_SMS_RATE"))
        return cls(
            database_url=text("DOSEWISE_DATABASE_URL") or cls.database_url,
            public_url=(text("DOSEWISE_PUBLIC_URL") or cls.public_url).rstrip("/"),
            admin_token=text("DOSEWISE_ADMIN_TOKEN"),
            twilio_account_sid=text("TWILIO_ACCOUNT_SID"),
            twilio_auth_token=text("TWILIO_AUTH_TOKEN"),
            twilio_from_number=text("TWILIO_FROM_NUMBER"),
            twilio_messaging_service_sid=text("TWILIO_MESSAGING_SERVICE_SID"),
            twilio_api_base_url=(text("TWILIO_API_BASE_URL") or cls.twilio_api_base_url).rstrip(
                "/"
            ),
            smtp_host=text("SMTP_HOST"),
            smtp_port=int(port) if port else cls.smtp_port,
            smtp_username=text("SMTP_USERNAME"),
            smtp_password=text("SMTP_PASSWORD"),
            smtp_starttls=(text("SMTP_STARTTLS") or "true").lower()
            not in {"0", "false", "no", "off"},
            email_from=text("DOSEWISE_EMAIL_FROM") or cls.email_from,
            sms_rate=sms_rate,
        )

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def smtp_configured(self) -> bool:
        return self.smtp_host is not None


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
