"""Reading a regimen file (YAML or JSON) into a validated Regimen, with errors a person can read."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from schemas.regimen import Regimen


class RegimenFileError(ValueError):
    """The file cannot be read or does not describe a valid regimen; the text says where."""


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads an unquoted 12:00 as the number 720 (base 60); we want the text."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0|[-+]?[1-9][0-9_]*)$"),
    list("-+0123456789"),
)


def parse_regimen_text(text: str, source: str = "regimen") -> Regimen:
    data = _parse(text, source)
    try:
        return Regimen.model_validate(data)
    except ValidationError as error:
        raise RegimenFileError(f"{source}: {describe(error)}") from None


def load_regimen(path: str | Path) -> Regimen:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegimenFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RegimenFileError(f"{path}: cannot be read ({error})") from None
    return parse_regimen_text(text, str(path))


def _parse(text: str, source: str) -> Any:
    try:
        if text.lstrip().startswith(("{", "[")):
            return json.loads(text)
        return yaml.load(text, Loader=_Loader)
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "syntax error"
        raise RegimenFileError(f"{source}: not valid YAML or JSON ({first_line})") from None


def describe(error: ValidationError) -> str:
    """The first problem, as `where: what` (one line; the rest are counted)."""
    problems = error.errors(include_url=False)
    first = problems[0]
    where = ".".join(str(part) for part in first["loc"]) or "file"
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "is required"
    elif first["type"] == "extra_forbidden":
        message = "is not a known field"
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{where}: {message}{more}"
