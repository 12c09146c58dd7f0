"""Uni-MER builder: motion-verified instruction data from micro-expression databases."""

__version__ = "0.1.0"
