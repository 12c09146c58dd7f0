"""Errors that name where the bad input is, so a researcher can fix the file, not guess."""

from __future__ import annotations


class InputError(Exception):
    """A problem with one input (a row, a frame, a manifest entry): that clip is skipped.

    ``reason`` is a short machine-readable kind used in the build report's counts.
    """

    def __init__(self, reason: str, message: str, file: str = "", row: int | None = None, field: str = ""):
        self.reason, self.file, self.row, self.field = reason, str(file), row, field
        where = [p for p in (str(file) if file else "", f"row {row}" if row is not None else "",
                             f"field {field!r}" if field else "") if p]
        self.message = f"{', '.join(where)}: {message}" if where else message
        super().__init__(self.message)


class UnusableInput(Exception):
    """The whole input cannot be used (empty root, sheet missing a column): the build exits 2."""

    def __init__(self, message: str, skipped: list | None = None):
        super().__init__(message)
        self.skipped = list(skipped or [])  # the rows that were skipped, when none was usable (records.Skip)
