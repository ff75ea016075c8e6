"""Phone numbers in logs: enough to tell people apart while debugging, not enough to call.

One masking for every service: the notifier's (services.sending), which the tracker may use
and which may not import the tracker."""

from __future__ import annotations

from services.sending import mask_phone

__all__ = ["mask_phone"]
