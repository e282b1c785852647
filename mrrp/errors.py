"""One family of errors a user can cause, each carrying a message meant for a clinician.

The app and the CLI show ``str(error)`` and nothing else: no traceback, no library jargon.
"""

from __future__ import annotations


class InputError(Exception):
    """Something the user supplied cannot be used. ``str(err)`` is the clinician-facing message."""


class SlideError(InputError):
    """A slide file cannot be used."""


class SlideNotFoundError(SlideError):
    """The path does not exist or is not a file."""


class EmptyFileError(SlideError):
    """The file has zero bytes."""


class UnsupportedFormatError(SlideError):
    """The file is not a slide or image format mrrp can read."""


class CorruptSlideError(SlideError):
    """The file looks like a slide but its contents cannot be decoded (truncated or damaged)."""


class ImageTooLargeError(SlideError):
    """A plain image is larger than the safe decoding limit (e.g. a decompression bomb)."""


class MissingMppError(SlideError):
    """The slide does not record its resolution (microns per pixel) and none was supplied."""


class NoTissueError(SlideError):
    """No tissue was found on the slide, so there is nothing to analyse."""


class InvalidValueError(InputError):
    """A parameter value is out of range or malformed."""
