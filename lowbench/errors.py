"""User-facing errors: one clear line, a fix, exit code 2, no traceback (unless --debug)."""

from __future__ import annotations


class LowbenchError(Exception):
    """An error caused by the user's input or environment.

    The CLI prints ``str(err)`` as a single line prefixed by ``lowbench: error:`` and exits with
    ``exit_code`` (2 by default). The message must name the offending file or value and the fix.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class DataError(LowbenchError):
    """Missing, incomplete, unreadable or tampered data (raw files, task data roots, caches)."""


class CheckpointError(LowbenchError):
    """A checkpoint that cannot be loaded safely or belongs to another architecture."""


class VariantError(LowbenchError):
    """A model x quantization combination that cannot be built on this platform."""


class OutputError(LowbenchError, OSError):
    """The system refused to write an output (read-only, no permission, disk full, file-size
    limit, a path through a file): the message names the path and the fix. Also an OSError, so
    code that handles write failures as OSErrors keeps working."""
