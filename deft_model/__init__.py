"""DEFT-LLM: disentangled expert feature tuning for micro-expression recognition."""

__version__ = "0.1.0"
