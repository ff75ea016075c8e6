"""docker-compose.yml: no Docker engine runs here, so the file is parsed and every command it
runs is run the same way (or parsed by the real command line), every setting checked as real."""

from __future__ import annotations

import re
import subprocess
import sys
import time
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


_FROM_ENV = re.compile(r"^\$\{(?P<name>[A-Z_]+)(:-(?P<default>.*))?\}$")


@pytest.mark.parametrize("name", DOSEWISE_SERVICES)
def test_every_setting_compose_passes_is_decided_by_the_env_file(name: str) -> None:
    """A value in `environment:` overrides `env_file:`, so each one reads its own variable from
    .env (compose's interpolation) and only falls back to wiring the containers together."""
    for variable, value in SERVICES[name]["environment"].items():
        match = _FROM_ENV.match(str(value))
        assert match is not None, f"{variable}: {value!r} is fixed, .env cannot change it"
        assert match["name"] == variable


def test_the_tracker_healthcheck_asks_a_running_tracker(tmp_path: Path) -> None:
    from tests.conftest import free_port

    env = {"DOSEWISE_DATABASE_URL": f"sqlite:///{tmp_path / 'h.db'}", "PATH": "/usr/bin:/bin"}
    dosewise = [sys.executable, "-m", "dosewise"]
    subprocess.run([*dosewise, "db", "upgrade"], env=env, check=True, capture_output=True)
    port = free_port()
    check = SERVICES["tracker"]["healthcheck"]["test"]
    assert check[0] == "CMD"
    command = [sys.executable if part == "python" else part for part in check[1:]]
    command = [part.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for part in command]
    tracker = subprocess.Popen(
        [*dosewise, "tracker", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if subprocess.run(command, capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the healthcheck never passed against a running tracker")
    finally:
        tracker.terminate()
        tracker.wait(timeout=10)
    after = subprocess.run(command, capture_output=True, check=False)
    assert after.returncode != 0, "the healthcheck passes with no tracker running"


def _dockerfile_stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            stages.append([])
        if stages and line and not line.startswith("#"):
            stages[-1].append(line)
    return stages


def test_the_image_runs_as_a_user_without_privileges_from_built_wheels() -> None:
    build, image = _dockerfile_stages()
    assert any("pip wheel" in line and "requirements.lock" in line for line in build)
    users = [line.split()[1] for line in image if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    installs = [line for line in image if "pip install" in line]
    assert installs and all("--no-index" in line for line in installs)


def _requirement_closure(name: str) -> set[str]:
    """The distributions installing `name` pulls in, extras asked for included."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    seen: set[tuple[str, frozenset[str]]] = set()
    wanted: list[tuple[str, frozenset[str]]] = [(name, frozenset())]
    while wanted:
        current, extras = wanted.pop()
        key = current.lower().replace("_", "-")
        if (key, extras) in seen:
            continue
        seen.add((key, extras))
        try:
            needs = requires(current) or []
        except PackageNotFoundError:
            continue
        for text in needs:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in extras | {""}):
                wanted.append((requirement.name, frozenset(requirement.extras)))
    return {key for key, _ in seen}


def test_the_image_holds_no_test_or_lint_tool() -> None:
    """The image installs what dosewise's own requirements pull in (pip wheel ., not the lock)."""
    closure = _requirement_closure("dosewise")
    assert {"sqlalchemy", "twilio", "babel", "rapidfuzz"} <= closure
    assert not closure & {"pytest", "mypy", "ruff", "playwright", "hypothesis", "import-linter"}


def test_the_build_context_leaves_out_what_the_image_does_not_need() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".git", "*.db", "tests", ".env"} <= ignored
