"""The builder's version: recorded in every report and part of every build's fingerprint (pyproject reads it)."""

__version__ = "0.1.0"
