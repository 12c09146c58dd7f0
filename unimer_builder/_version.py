"""The builder's version: recorded in every report and part of every build's fingerprint (pyproject reads it)."""

__version__ = "0.1.2"  # 0.1.2: explain_motion tries every AU; 0.1.1: a labelled AU pooled over its regions
