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

    def __init__(self, message: str, skipped: list | None = None, resumable: bool = False):
        super().__init__(message)
        self.skipped = list(skipped or [])  # the rows that were skipped, when none was usable (records.Skip)
        self.resumable = resumable  # clips a cluster did not finish: the parts of the others stay for the re-run


class EnvironmentFailure(Exception):
    """The build cannot do its work where it was asked to (the output folder cannot be made or written, the
    disk is full, another build holds the folder): the build exits 3 with this one line, which names the path
    and the cause. Nothing already there is damaged: the previous ``data/`` stays loadable, and a re-run
    once the cause is gone resumes."""

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.path = str(path)

    @classmethod
    def from_os(cls, err: OSError, where: str = "") -> EnvironmentFailure:
        """One line from an ``OSError`` (as raised here, in a pool worker, or by pyarrow)."""
        path = err.filename or where
        cause = err.strerror or str(err) or type(err).__name__
        return cls(f"{path}: {cause}" if path else cause, path)
