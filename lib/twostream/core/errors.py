"""One exception type for problems the user can fix.

The CLI prints a ``UserError`` as one line (no traceback) and exits non-zero; library
callers can catch it. Messages should say *what* is wrong, *where* (file, line) and
*what to do*.
"""

import errno


class UserError(Exception):
    """A problem with the user's input, data or environment, with a message that says what to do."""


# The machine's state, not a bug: what to do about each (errno name -> advice).
_MACHINE_STATE = {
    "EROFS": "is on a read-only file system: point --out / data_root at a writable folder",
    "EACCES": "is not writable by you (permission denied): fix its permissions or point "
    "--out / data_root elsewhere",
    "EPERM": "cannot be changed (operation not permitted): fix its permissions or point "
    "--out / data_root elsewhere",
    "ENOSPC": "could not be written: no space left on the device; free space and rerun "
    "(finished work is kept and resumed) or move data_root to a larger disk",
    "EDQUOT": "could not be written: disk quota exceeded; free space or move data_root",
}


def machine_state_message(exc: BaseException) -> str | None:
    """One line for an ``OSError`` caused by the machine's state (read-only folder, no
    permission, disk full or over quota) naming the file and what to do; ``None`` for any
    other error, which stays a traceback (a bug to report)."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    name = errno.errorcode.get(exc.errno)
    if name not in _MACHINE_STATE:
        return None
    where = exc.filename if exc.filename is not None else "a file"
    return f"{where} {_MACHINE_STATE[name]} [{name}]"
