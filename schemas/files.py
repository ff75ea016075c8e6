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
    """YAML 1.1 reads an unquoted 12:00 as the number 720 (base 60); we want the text.

    A key given twice in one mapping is refused: YAML keeps the last one without a word, and
    "supplements:" twice or "deficiency_confirmed: true, deficiency_confirmed: false" would
    plan one of two prescriptions silently.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *defaults" keys may be overridden: that is what merging is
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: the constructor says so
            if duplicate:
                raise _DuplicateKey(f"duplicate key {key!r} on line {key_node.start_mark.line + 1}")
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(ValueError):
    """A mapping gives one key twice; the text names the key and where."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0|[-+]?[1-9][0-9_]*)$"),
    list("-+0123456789"),
)


# Sizes no regimen file reaches, refused before they are read: a regimen file is a few kB and
# its lists and mappings nest 4 deep at most (the file, its meals, a meal, what it contains;
# the file, its supplements, an entry, a dose's {value, unit}); a file far
# past these is a mistake or an attack, and reading it whole would take the YAML library
# seconds and Python's recursion limit (a traceback) before any check of ours said a word.
MAX_FILE_CHARACTERS = 1_000_000
MAX_DEPTH = 10  # nested lists and mappings
MAX_VALUES = 100_000  # every list, mapping and scalar, an alias counted as often as it is used


def parse_regimen_text(text: str, source: str = "regimen") -> Regimen:
    if len(text) > MAX_FILE_CHARACTERS:
        raise RegimenFileError(f"{source}: {_TOO_LARGE}")
    data = _parse(text, source)
    if not isinstance(data, dict):
        raise RegimenFileError(
            f"{source}: the file must be a mapping with person and supplements; "
            f"it is {_what_it_is(data)}"
        )
    _check_size(data, source)
    try:
        return Regimen.model_validate(data)
    except ValidationError as error:
        raise RegimenFileError(f"{source}: {describe(error)}") from None


def load_regimen(path: str | Path) -> Regimen:
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as file:
            text = file.read(MAX_FILE_CHARACTERS + 1)  # no more: a huge file is refused unread
    except FileNotFoundError:
        raise RegimenFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RegimenFileError(f"{path}: cannot be read ({error})") from None
    return parse_regimen_text(text, str(path))


def _parse(text: str, source: str) -> Any:
    """The file's data: JSON for a .json file; YAML otherwise, which JSON is a subset of (a
    file in YAML's flow style starts with "{" as JSON does)."""
    text = text.removeprefix("\ufeff")
    is_json = source.lower().endswith(".json")
    if _bracket_depth(text) > MAX_DEPTH:
        raise RegimenFileError(f"{source}: {_TOO_DEEP}")
    try:
        if is_json or text.lstrip().startswith(("{", "[")):
            try:
                return _unique_keys(json.loads(text, object_pairs_hook=_Pairs), ())
            except json.JSONDecodeError as error:
                if is_json:
                    raise RegimenFileError(f"{source}: not valid JSON ({error})") from None
        return yaml.load(text, Loader=_Loader)
    except _DuplicateKey as error:
        raise RegimenFileError(f"{source}: {error}: give each key once") from None
    except yaml.YAMLError as error:
        raise RegimenFileError(
            f"{source}: not valid YAML or JSON ({_yaml_problem(error)})"
        ) from None
    except RecursionError:  # nested deeper than the brackets show (YAML's indented blocks)
        raise RegimenFileError(f"{source}: {_TOO_DEEP}") from None


_TOO_LARGE = f"is larger than any regimen file (over {MAX_FILE_CHARACTERS} characters)"
_TOO_DEEP = f"is nested more than {MAX_DEPTH} levels deep; a regimen file needs 4 at most"


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def _bracket_depth(text: str) -> int:
    """How deep the text's [ and { nest, outside double-quoted strings (a bracket inside a plain
    YAML string may count: this bounds the depth, it does not parse)."""
    deepest = depth = 0
    for bracket in _BRACKETS.findall(_QUOTED.sub("", text)):
        depth = depth + 1 if bracket in "[{" else max(0, depth - 1)
        deepest = max(deepest, depth)
    return deepest


def _check_size(data: Any, source: str) -> None:
    """Refuse data nested deeper than MAX_DEPTH or of more than MAX_VALUES values (YAML's
    aliases can make a small file a huge one: "billion laughs")."""
    pending: list[tuple[Any, int]] = [(data, 1)]
    count = 0
    while pending:
        value, depth = pending.pop()
        count += 1
        if count > MAX_VALUES:
            raise RegimenFileError(
                f"{source}: holds more than {MAX_VALUES} values (a YAML alias counts each "
                "time it is used); no regimen file does"
            )
        if isinstance(value, dict):
            children = [*value.keys(), *value.values()]
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth >= MAX_DEPTH and any(isinstance(child, dict | list) for child in children):
            raise RegimenFileError(f"{source}: {_TOO_DEEP}")
        pending.extend((child, depth + 1) for child in children)


def _yaml_problem(error: yaml.YAMLError) -> str:
    """ "expected ',' or ']', but got '<stream end>' (line 3, column 1)", not the first line of
    the YAML library's several ("while parsing a flow node")."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem:
        mark = error.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        context = f"{error.context}, " if error.context and error.problem.startswith("but") else ""
        return f"{context}{error.problem}{where}"
    return str(error).strip().splitlines()[0] if str(error).strip() else "syntax error"


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its key, value pairs in order, duplicates and all."""


def _unique_keys(value: Any, where: tuple[str, ...]) -> Any:
    """The JSON value with its objects as dicts; a key an object gives twice is refused."""
    if not isinstance(value, list):
        return value
    if not isinstance(value, _Pairs):
        return [_unique_keys(item, (*where, str(index))) for index, item in enumerate(value)]
    mapping: dict[str, Any] = {}
    for key, item in value:
        if key in mapping:
            place = f"in {'.'.join(where)}" if where else "at the top level"
            raise _DuplicateKey(f"duplicate key {key!r} {place}")
        mapping[key] = _unique_keys(item, (*where, key))
    return mapping


def _what_it_is(data: Any) -> str:
    if data is None or data == "":
        return "empty"
    if isinstance(data, bool):
        return f"the value {str(data).lower()}"
    if isinstance(data, int | float):
        return f"the number {data}"
    if isinstance(data, list):
        return "a list"
    return f"a {type(data).__name__}" if not isinstance(data, str) else "a line of text"


def describe(error: ValidationError) -> str:
    """The first problem, as `where: what` (one line; the rest are counted)."""
    problems = error.errors(include_url=False)
    first = problems[0]
    # a key is shown as written unless it holds what would break the line ("\n", an escape)
    where = ".".join(str(part) if str(part).isprintable() else repr(part) for part in first["loc"])
    where = where or "file"
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "is required"
    elif first["type"] == "string_type" and isinstance(first["input"], bool | int | float):
        # phone: +4520123456 unquoted is the number 4520123456, its "+" gone; name: yes is true
        message = f"must be text: put it in quotes (unquoted, it is {_what_it_is(first['input'])})"
    elif first["type"] == "extra_forbidden":
        message = "is not a known field"
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{where}: {message}{more}"
