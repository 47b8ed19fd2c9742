"""Exceptions a user can act on: each names the file, row or field at fault."""

from __future__ import annotations


class FlukeidError(Exception):
    """Base class: the CLI prints the message as one red line and exits non-zero."""


class CatalogueError(FlukeidError):
    """A catalogue cannot be loaded at all (missing CSV, wrong columns...)."""


class ImageError(FlukeidError):
    """One image cannot be used (unreadable, truncated, too many pixels...)."""


class SubmissionError(FlukeidError):
    """A submission file is malformed (columns, images, number of labels)."""


class ConfigError(FlukeidError):
    """A config file or value is invalid (unknown key or name, bad type)."""
