"""Exceptions raised for bad input. Each message is one line naming the offending file and the fix."""


class ASDError(ValueError):
    """Base class of every error the project raises for bad input or bad settings."""


class DataLayoutError(ASDError):
    """A data root, folder or file name does not follow the DCASE task 2 layout."""


class AudioError(ASDError):
    """A recording cannot be read: truncated, empty, not audio, or an unusable channel."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
