"""The built-in synthetic compressed-action dataset (class design in
:mod:`flatkd.data.synth.design`); its names are imported on first use."""

from flatkd.lazy import lazy_exports

# the names by the submodule defining each, imported on first use
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "build": ("SynthSettings", "generate_synthetic"),
        "design": ("ClassSpec", "class_table"),
    },
)
