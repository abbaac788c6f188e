"""The run layer: commands' work on a run directory, between the CLI and the method packages.

Each module runs one kind of work on a :class:`~flatkd.runs.rundir.RunDir` (train a modality,
rank the modalities, distil, fit WISE, build tables) by calling the method packages
(:mod:`flatkd.train`, :mod:`flatkd.landscape`, :mod:`flatkd.distill`, :mod:`flatkd.data`); the
CLI calls these modules and nothing below them does (``../shared/DESIGN.md`` §2).
"""
