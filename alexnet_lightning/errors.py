"""One-line errors for bad input: what is wrong and how to fix it, never a traceback wall."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class UserError(Exception):
    """Raised for mistakes a user can fix (a path, a config value); shown as one line."""


def find_user_error(exc: BaseException | None) -> UserError | None:
    """The UserError behind ``exc``, also when Hydra's instantiate wrapped it."""
    while exc is not None:
        if isinstance(exc, UserError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def exit_on_user_error(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn a UserError raised by a command into ``error: ...`` on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            user_error = find_user_error(e)
            if user_error is None:
                raise
            print(f"error: {user_error}", file=sys.stderr)
            sys.exit(2)

    return wrapper
