"""What ``flatkd train --resume`` may change about the settings a run recorded.

A resume resolves its settings from the recorded ``train.<modality>`` section and whatever flags,
``--config`` or ``--set`` it is given (:mod:`flatkd.runs.settings`). Before anything is written,
the resolved settings are compared with the recorded ones, field by field:

- fields no stage's numbers depend on (those :func:`flatkd.train.loop.stage_settings` leaves out:
  loader workers, evaluation batch size, memory layout, compilation) may change freely;
- any other change is refused, in one line naming every setting that differs
  (``preset: cpu-tiny -> resnet18, seed: 0 -> 7``), so a resume never silently trains another
  network under the run's name;
- ``--allow-changed`` accepts changes that only touch stages not started yet (no resume state),
  e.g. the IC stage's epochs while the backbone still trains; the stages that started keep the
  settings they recorded, so a change one of them depends on (the preset, the seed, the device,
  its own epochs, ...) is refused even then: its resume state would refuse it half-way anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flatkd.config import from_dict, to_dict
from flatkd.errors import ConfigError
from flatkd.runs.rundir import RunDir
from flatkd.runs.settings import differences
from flatkd.runs.stages import Stage
from flatkd.train.config import StageConfig, TrainConfig
from flatkd.train.loop import stage_settings

#: the TrainConfig field holding the settings of each stage ``flatkd train`` runs
STAGE_FIELDS: dict[Stage, str] = {Stage.BACKBONE: "backbone", Stage.IC_CE: "ics"}


def changed_settings(
    run: RunDir, modality: str, recorded: Mapping[str, Any] | None, config: TrainConfig, *, allow_changed: bool
) -> list[str]:
    """The result-relevant settings in which ``config`` (resolved for a resume) differs from the
    ``recorded`` section of ``modality`` (None: nothing recorded, a first train), as
    ``key: old -> new``. Raises :class:`ConfigError` for any such change unless ``allow_changed``,
    and even then for a change a started stage depends on (module docstring)."""
    if recorded is None:
        return []
    before = from_dict(TrainConfig, recorded, where=f"{run.config_path}: train.{modality}")
    changed = differences(_relevant(before), _relevant(config))
    if not changed:
        return []
    listed = ", ".join(changed)
    started = [
        str(stage)
        for stage, field in STAGE_FIELDS.items()
        if run.resume_path(stage, modality).is_file() and _stage(before, field) != _stage(config, field)
    ]
    if started:
        stages = f"stage {started[0]}" if len(started) == 1 else f"stages {', '.join(started)}"
        raise ConfigError(
            f"{run.path} trains {modality} with other settings ({listed}), and its {stages} started with the"
            " recorded ones; resume with those (drop the changed flags) or choose a new --run"
        )
    if not allow_changed:
        raise ConfigError(
            f"{run.path} trains {modality} with other settings ({listed}); drop the changed flags, pass"
            " --allow-changed to train the stages not started yet with them, or choose a new --run"
        )
    return changed


def _stage(config: TrainConfig, field: str) -> dict[str, Any]:
    """What the numbers of the stage whose settings are ``config.<field>`` depend on."""
    stage: StageConfig = getattr(config, field)
    return stage_settings(config, stage)


def _relevant(config: TrainConfig) -> dict[str, Any]:
    """``config``'s fields some stage's numbers depend on: every stage's own settings, and what
    :func:`~flatkd.train.loop.stage_settings` keeps of the rest."""
    shared = _stage(config, STAGE_FIELDS[Stage.BACKBONE])
    return {k: v for k, v in to_dict(config).items() if k in shared or k in STAGE_FIELDS.values()}
