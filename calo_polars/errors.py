"""Exceptions the library raises on purpose; the CLI maps them to messages and exit codes."""

from __future__ import annotations


class CaloError(Exception):
    """Base class: a problem the user can fix, reported in one line without a traceback."""


class InputNotFound(CaloError):
    """An input path does not exist."""


class NoUsableInput(CaloError):
    """No input file could be read: there is nothing to audit."""


class UsageError(CaloError):
    """The options given cannot work together."""


class OutputError(CaloError):
    """The outputs could not be written (permissions, a full disk...)."""
