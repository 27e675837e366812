"""One exception type for problems the user can fix.

The CLI prints a ``UserError`` as one line (no traceback) and exits non-zero; library
callers can catch it. Messages should say *what* is wrong, *where* (file, line) and
*what to do*.
"""


class UserError(Exception):
    """A problem with the user's input, data or environment, with a message that says what to do."""
