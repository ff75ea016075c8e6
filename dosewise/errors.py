"""The one kind of error a user sees: a single clear line and exit status 2."""


class UserError(Exception):
    """Bad input or an unusable environment; the message is the whole explanation."""
