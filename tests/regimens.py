"""Building regimens for tests from small dicts, the way a regimen file would say them."""

from __future__ import annotations

from typing import Any

from schemas.regimen import Regimen


def regimen(
    supplements: list[dict[str, Any]],
    *,
    timezone: str = "Europe/Copenhagen",
    waking: tuple[str, str] = ("07:00", "22:00"),
    meals: list[dict[str, Any]] | None = None,
    medications: list[dict[str, Any]] | None = None,
    quiet: list[tuple[str, str]] | None = None,
    policy: dict[str, Any] | None = None,
) -> Regimen:
    return Regimen.model_validate(
        {
            "person": {
                "name": "Test Person",
                "phone": "+4520123456",
                "timezone": timezone,
                "waking": {"from": waking[0], "to": waking[1]},
                "quiet": [{"from": start, "to": end} for start, end in quiet or []],
            },
            "meals": meals or [],
            "medications": medications or [],
            "supplements": supplements,
            "policy": policy or {},
        }
    )


IRON = {"name": "iron", "dose": "18 mg", "deficiency_confirmed": True}
VITAMIN_C = {"name": "vitamin C", "dose": "250 mg"}
