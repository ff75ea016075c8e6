"""Dose amounts: a number and a unit, spelled one way whatever the regimen file wrote."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

Unit = Literal["mg", "µg", "IU"]

# Every spelling people use, mapped to the unit we keep and the factor to get there.
_UNIT_SPELLINGS: dict[str, tuple[Unit, Decimal]] = {
    "mg": ("mg", Decimal(1)),
    "milligram": ("mg", Decimal(1)),
    "milligrams": ("mg", Decimal(1)),
    "g": ("mg", Decimal(1000)),
    "gram": ("mg", Decimal(1000)),
    "grams": ("mg", Decimal(1000)),
    "µg": ("µg", Decimal(1)),
    "μg": ("µg", Decimal(1)),  # Greek mu, not the micro sign: both are typed
    "mcg": ("µg", Decimal(1)),
    "ug": ("µg", Decimal(1)),
    "microgram": ("µg", Decimal(1)),
    "micrograms": ("µg", Decimal(1)),
    "iu": ("IU", Decimal(1)),
    "ie": ("IU", Decimal(1)),
}

_AMOUNT = re.compile(r"^\s*(?P<value>\d+(?:[.,]\d+)?)\s*(?P<unit>[^\d\s].*?)\s*$")


class Amount(BaseModel):
    """A positive amount in mg, µg or IU. Grams become milligrams."""

    model_config = ConfigDict(frozen=True)

    value: Decimal
    unit: Unit

    @property
    def milligrams(self) -> Decimal | None:
        """The mass in mg, or None for IU (which has no mass without knowing the vitamin)."""
        if self.unit == "mg":
            return self.value
        if self.unit == "µg":
            return self.value / 1000
        return None

    def __str__(self) -> str:
        return f"{_plain(self.value)} {self.unit}"

    def times(self, factor: int) -> Amount:
        return Amount(value=self.value * factor, unit=self.unit)


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def parse_amount(raw: Any) -> Amount:
    """Read "18 mg", "100 mcg", "0.5 g", "1000 IU" or a {value, unit} mapping."""
    if isinstance(raw, Amount):
        return raw
    if isinstance(raw, dict):
        raw = f"{raw.get('value')} {raw.get('unit')}"
    if not isinstance(raw, str):
        raise ValueError(f"a dose is written like '18 mg' or '100 µg', not {raw!r}")
    match = _AMOUNT.match(raw)
    if match is None:
        raise ValueError(f"a dose is written like '18 mg' or '100 µg', not {raw!r}")
    spelled = match.group("unit").strip().lower().rstrip(".")
    if spelled not in _UNIT_SPELLINGS:
        raise ValueError(
            f"unknown unit {match.group('unit')!r} in dose {raw!r}: use mg, µg, g or IU"
        )
    unit, factor = _UNIT_SPELLINGS[spelled]
    _refuse_grouped_thousands(match.group("value"), raw)
    try:
        value = Decimal(match.group("value").replace(",", ".")) * factor
    except InvalidOperation as error:  # pragma: no cover - the regex admits only numbers
        raise ValueError(f"cannot read the number in dose {raw!r}") from error
    if value <= 0:
        raise ValueError(f"a dose must be more than zero, not {raw!r}")
    return Amount(value=value, unit=unit)


def _refuse_grouped_thousands(number: str, raw: str) -> None:
    """ "1,000 mcg" is a thousand where the comma groups digits and one where it is a decimal
    comma, and so is "2.500 IU" where the point groups them (Danish, German): reading either
    the wrong way changes a dose a thousandfold, so neither is guessed."""
    whole, separator, fraction = number.partition("," if "," in number else ".")
    if separator and len(fraction) == 3 and whole.lstrip("0"):
        raise ValueError(
            f"dose {raw!r} is ambiguous: {whole}{separator}{fraction} may be a thousand times "
            f"more or less; write it without the separator ({whole}{fraction}) or with "
            f"fewer decimals ({whole}.{fraction.rstrip('0') or '0'})"
        )


# The regimen file writes doses as strings; JSON output shows them the same way.
DoseAmount = Annotated[
    Amount,
    BeforeValidator(parse_amount),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\s*\d+([.,]\d+)?\s*\S.*$",
            "description": "an amount and a unit: mg, µg (mcg, ug), g or IU",
            "examples": ["18 mg", "100 µg", "1000 IU"],
        }
    ),
]
