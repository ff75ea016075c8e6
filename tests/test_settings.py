"""The environment of the contract: a bad value is refused in one line naming the variable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dosewise.settings import Settings


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("SMTP_PORT", "99999", "SMTP_PORT must be a port number (1-65535), not '99999'"),
        ("SMTP_PORT", "0", "SMTP_PORT must be a port number (1-65535), not '0'"),
        ("SMTP_PORT", "smtp", "SMTP_PORT must be a port number (1-65535), not 'smtp'"),
        (
            "DOSEWISE_PUBLIC_URL",
            "not a url",
            "DOSEWISE_PUBLIC_URL must be an http:// or https:// URL with a host, not 'not a url'",
        ),
        (
            "DOSEWISE_PUBLIC_URL",
            "dosewise.example.com",
            "DOSEWISE_PUBLIC_URL must be an http:// or https:// URL with a host",
        ),
        ("DOSEWISE_PUBLIC_URL", "ftp://example.com", "must be an http:// or https:// URL"),
        ("DOSEWISE_PUBLIC_URL", "https://example.com/?a=1", "must be an http:// or https:// URL"),
        ("TWILIO_API_BASE_URL", "localhost:8080", "TWILIO_API_BASE_URL must be an http://"),
        ("SMTP_STARTTLS", "maybe", "SMTP_STARTTLS must be true or false, not 'maybe'"),
        ("DOSEWISE_DATABASE_URL", "garbage", "DOSEWISE_DATABASE_URL is not a database URL"),
        ("DOSEWISE_DATABASE_URL", "dosewise.db", "DOSEWISE_DATABASE_URL is not a database URL"),
        ("TWILIO_ACCOUNT_SID", "AC1", "TWILIO_ACCOUNT_SID is set but TWILIO_AUTH_TOKEN is not"),
    ],
)
def test_a_bad_value_is_refused_naming_it(name: str, value: str, said: str) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        Settings.from_environment({name: value})


def test_good_values_are_read() -> None:
    settings = Settings.from_environment(
        {
            "DOSEWISE_PUBLIC_URL": "https://dosewise.example.com/tracker/",
            "TWILIO_API_BASE_URL": "http://127.0.0.1:8080",
            "SMTP_PORT": "2525",
            "SMTP_STARTTLS": "Off",
        }
    )
    assert settings.public_url == "https://dosewise.example.com/tracker"  # a proxy's prefix kept
    assert settings.twilio_api_base_url == "http://127.0.0.1:8080"
    assert settings.smtp_port == 2525
    assert settings.smtp_starttls is False
    assert Settings.from_environment({}).smtp_starttls is True
    for url in ("sqlite://", "sqlite:///dosewise.db", "postgresql+psycopg://u:p@h:5432/d"):
        assert Settings.from_environment({"DOSEWISE_DATABASE_URL": url}).database_url == url
    # the tracker needs only the token (it checks signatures); SID and token send by Twilio
    assert Settings.from_environment({"TWILIO_AUTH_TOKEN": "t"}).twilio_configured is False
    both = {"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"}
    assert Settings.from_environment(both).twilio_configured is True


def test_a_command_says_it_in_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DOSEWISE_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
        "DOSEWISE_PUBLIC_URL": "not a url",
    }
    done = subprocess.run(
        [sys.executable, "-m", "dosewise", "people", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "dosewise: DOSEWISE_PUBLIC_URL must be an http:// or https:// URL with a host,"
        " not 'not a url'"
    ]
