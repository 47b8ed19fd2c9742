"""Synthetic fluke catalogues in the Kaggle "Humpback Whale Identification" layout, no download needed.

Each individual has its own fluke outline (trailing-edge notches, serration, tips), pigment patches
and scars; everything else in a photo (size, pose, lighting, sea and sky, blur, greyscale, text) is
drawn per photo, independently of identity. Same seed, same bytes.

Modules, each importing only those before it: ``individual`` (an individual's shape and markings drawn
from a generator), ``render`` (one photo of an individual), ``generate`` (a whole catalogue on disk).
"""

from flukeid.synth.generate import SynthConfig, SynthSummary, generate
from flukeid.synth.individual import EdgeNotch, Individual, Patch, Scar, sample_individual
from flukeid.synth.render import RenderedPhoto, render_photo

__all__ = [
    "EdgeNotch",
    "Individual",
    "Patch",
    "RenderedPhoto",
    "Scar",
    "SynthConfig",
    "SynthSummary",
    "generate",
    "render_photo",
    "sample_individual",
]
