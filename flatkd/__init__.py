"""flatkd: flatness analysis and knowledge distillation for compressed-video action recognition.

Subpackages (see ``../shared/DESIGN.md`` for the data flow):

- :mod:`flatkd.codec`: the compressed domain read with PyAV (I-frames, motion vectors, residuals).
- :mod:`flatkd.data`: synthetic dataset, UCF-101/HMDB-51 splits, modality cache, torch Dataset.
- :mod:`flatkd.models`: per-modality backbones with internal classifiers (early exits).
- :mod:`flatkd.landscape`: Hessian spectrum, trace, density, loss surfaces, modality ranking.
- :mod:`flatkd.distill`: KD, PKD, WISE and generative feature distillation.
"""

__version__ = "0.1.0"
