"""User-facing errors.

Library code raises :class:`FlatkdError` (or a subclass) for anything a user can fix: bad input
files, wrong settings, missing prerequisites. The message is one line that says what is wrong and,
where there is one, what to do about it. The CLI prints it as ``flatkd: error: <message>`` and
exits with status 2, without a traceback. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class FlatkdError(Exception):
    """An error caused by the user's input or environment, reported as one line."""


class ConfigError(FlatkdError):
    """A configuration file or option is invalid (unknown key, wrong type, bad value)."""


class InputFileError(FlatkdError):
    """An input file is missing, unreadable, corrupt or of an unsupported kind."""


class MissingPrerequisiteError(FlatkdError):
    """A step needs the output of an earlier step; the message names the command to run first."""


class OutputWriteError(FlatkdError):
    """An output could not be written (a full disk, no permission); the message names the path."""
