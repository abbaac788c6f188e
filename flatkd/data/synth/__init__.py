"""The built-in synthetic compressed-action dataset (class design in
:mod:`flatkd.data.synth.design`); its names are imported on first use."""

from flatkd.lazy import lazy_exports

# name -> the module defining it, imported on first use
_EXPORTS = {
    "ClassSpec": "flatkd.data.synth.design",
    "SynthSettings": "flatkd.data.synth.build",
    "class_table": "flatkd.data.synth.design",
    "generate_synthetic": "flatkd.data.synth.build",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
