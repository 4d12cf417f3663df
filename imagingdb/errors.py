"""The exceptions imagingdb raises for people, and the exit code each maps to.

The CLI prints ``Error: <message>`` (one line, no traceback unless ``--debug``)
for any :class:`ImagingDBError` and exits with its ``exit_code``:

- 2: bad usage or bad input, found before any work was done (nothing changed);
- 1: a failure during the work itself.
"""

from __future__ import annotations


class ImagingDBError(Exception):
    """Base of every error imagingdb reports to a user."""

    exit_code = 1

    def __init__(self, message: str):
        # Keep messages on one line: the CLI promises a one-line ``Error:``.
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self) -> str:
        return str(self)


class InputError(ImagingDBError):
    """Bad input (file, CSV row, config key, ID...) found before any work."""

    exit_code = 2


class MissingDependencyError(InputError):
    """An optional dependency a feature needs is not installed; the message names the extra."""


class NotFoundError(InputError):
    """A dataset, channel or index that does not exist."""


class WorkError(ImagingDBError):
    """A failure while doing the work (storage, database, a file that breaks midway)."""

    exit_code = 1


class SplitterError(InputError):
    """A source file a splitter cannot read: names the file and what is wrong."""


class UnclaimedSourceError(InputError):
    """No splitter recognises a source (``frames_format: auto``); ``formats`` lists them all."""

    def __init__(self, message: str, formats: tuple[str, ...] = ()):
        super().__init__(message)
        self.formats = formats


class ImagingDBWarning(UserWarning):
    """What the CLI shows as a ``Warning:`` line (and an API user sees as a warning)."""


class MissingFramesWarning(ImagingDBWarning):
    """``Dataset.read`` filled frames that an incomplete acquisition never recorded."""


class StoreFallbackWarning(ImagingDBWarning):
    """The primary store could not be reached: a dataset was read from another store's copy."""
