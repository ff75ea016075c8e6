"""What a log line may say of an error."""

from __future__ import annotations


def error_line(error: BaseException) -> str:
    """The error's type and first line: never the SQL and the parameters that a database
    error's message goes on with, which hold phone numbers and message bodies."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
