"""Errors a user can act on.

Every failure the library expects (bad input, missing tool, unavailable
video, corrupt file) raises a subclass of :class:`AvprepError` whose message
says what went wrong and what to do. The CLI prints the message without a
traceback and exits non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations


class AvprepError(Exception):
    """Base class: the message is meant for the user, not the developer."""

    exit_code = 1


class ConfigError(AvprepError):
    """An option, config file or pipeline recipe is invalid."""

    exit_code = 2


class UnknownNameError(ConfigError):
    """A registry lookup failed; the message lists the valid names."""


class InputError(AvprepError):
    """An input file (id list, JSON, XML, HDF5, video) is missing or malformed."""


class HostileIdError(InputError):
    """A clip id could escape the output folder or reach a shell."""


class ChecksumError(AvprepError):
    """A downloaded or stored file does not have the expected sha256."""


class ToolMissingError(AvprepError):
    """A required external tool (ffmpeg, ...) or package cannot be found."""


class DownloadError(AvprepError):
    """A download failed; may succeed on retry (network, throttling)."""


class UnavailableError(DownloadError):
    """The media is gone (private, removed, 404): retrying will not help."""


class MediaError(AvprepError):
    """A video cannot be decoded, has no audio stream, or has zero duration."""


class StoreError(AvprepError):
    """An HDF5 store is missing, truncated, or does not match its index."""


class AnnotationError(InputError):
    """Ground-truth annotations are malformed or unsafe."""


class DiskFullError(AvprepError):
    """The disk (or quota) is full: a property of the machine, not of a clip.

    The run stops; the clip it was working on is recorded as retryable and the
    next run redoes it once space is freed.
    """
