"""Exceptions that edgesense raises for problems a user can fix.

Every error a user can cause (a missing file, a malformed recording, an unknown profile, a bad
argument value) is an :class:`EdgesenseError`. The command line prints these as one line and exits
non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgesenseError(Exception):
    """Base class of every user-facing edgesense error."""


class ProfileError(EdgesenseError, ValueError):
    """A sensor profile is unknown, malformed or inconsistent."""


class FormatError(EdgesenseError):
    """A file is not in the format it claims to be, or is damaged beyond recovery."""


class SourceError(EdgesenseError):
    """A frame source could not be opened or failed while streaming."""


class ModelError(EdgesenseError):
    """A model file is missing, unsupported or corrupt."""
