"""The built-in synthetic compressed-action dataset (class design in
:mod:`flatkd.data.synth.design`)."""

from flatkd.data.synth.build import SynthSettings, generate_synthetic
from flatkd.data.synth.design import ClassSpec, class_table

__all__ = ["ClassSpec", "SynthSettings", "class_table", "generate_synthetic"]
