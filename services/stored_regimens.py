"""A regimen stored by an earlier dosewise whose rules let it in, that today's rules refuse.

Nothing is planned or promised from it: the scheduler says so in its refusals and log lines,
the tracker in its answers, in the same words, until the person is enrolled again.
"""

from __future__ import annotations

from pydantic import ValidationError

ENROL_AGAIN = "dosewise people add"


def no_longer_accepted(error: ValidationError) -> str:
    """Why nothing is planned from the stored regimen: the first thing today's rules refuse."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return (
        f"the stored regimen is not accepted any more ({where}: {first['msg']}); nothing is "
        f"planned until `{ENROL_AGAIN}` enrols a corrected file"
    )
