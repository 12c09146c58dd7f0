"""Old home of :class:`~unimer_builder.records.SynthClip` (the layout writers' input record), kept for imports."""

from ..records import SynthClip

__all__ = ["SynthClip"]
