"""The one exception type for user mistakes.

Anything raised as `UserError` is printed by the command-line tools as a single line (no
traceback) and exits non-zero; everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake the user can fix: the message names the file or value and the fix."""
