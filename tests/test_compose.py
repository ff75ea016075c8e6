"""docker-compose.yml: no Docker engine runs here, so the file is parsed and every command it
runs is run the same way (or parsed by the real command line), every setting checked as real."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dosewise.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DOSEWISE_SERVICES = [
    name for name, body in SERVICES.items() if body.get("image") == "dosewise:latest"
]


def test_the_services_of_the_contract_are_there() -> None:
    assert set(DOSEWISE_SERVICES) == {"migrate", "scheduler", "notifier", "tracker"}
    assert SERVICES["postgres"]["healthcheck"]["test"]
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("scheduler", "notifier", "tracker"):
        depends = SERVICES[name]["depends_on"]["migrate"]["condition"]
        assert depends == "service_completed_successfully"
    assert "8000:8000" in SERVICES["tracker"]["ports"]
    assert "mailcatcher" in SERVICES


@pytest.mark.parametrize("name", DOSEWISE_SERVICES)
def test_every_command_is_a_real_dosewise_command(name: str) -> None:
    command = SERVICES[name]["command"]
    arguments = build_parser().parse_args(command)  # exits on an unknown command or option
    assert callable(arguments.handler)


def _settings_read_by_the_code() -> set[str]:
    source = (ROOT / "dosewise" / "settings.py").read_text()
    return set(re.findall(r'"((?:DOSEWISE|TWILIO|SMTP)_[A-Z_]+)"', source))


def _settings_of_the_contract() -> set[str]:
    text = (ROOT / "docs" / "contract.md").read_text()
    return set(re.findall(r"`((?:DOSEWISE|TWILIO|SMTP)_[A-Z_]+)`", text))


def test_every_variable_compose_sets_is_a_real_setting() -> None:
    real = _settings_read_by_the_code()
    for name in DOSEWISE_SERVICES:
        assert set(SERVICES[name]["environment"]) <= real


def test_env_example_lists_every_setting_of_the_contract() -> None:
    listed = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert listed <= _settings_read_by_the_code()
    assert _settings_of_the_contract() <= listed


def test_the_one_shot_upgrade_runs_as_compose_runs_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'compose.db'}"
    command = SERVICES["migrate"]["command"]
    result = subprocess.run(
        [sys.executable, "-m", "dosewise", *command],
        env={"DOSEWISE_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "compose.db").stat().st_size > 0
