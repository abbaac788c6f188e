"""Settings of ``flatkd distill``: one :class:`DistillConfig` per (method, modality), saved resolved
under ``distill.<method>.<modality>`` in the run's ``config.yaml``.

Resolution, each layer merged key by key into the one below:

1. defaults, with ``ics`` (epochs, optimiser, schedule of the IC stage) taken from the settings
   ``flatkd train`` used for that modality's ``ic-ce`` stage, so CE and the distillation methods
   train their ICs alike;
2. on ``--resume``, the settings the interrupted run recorded;
3. a ``--config`` YAML file with any of the fields below (sections a method does not use are
   ignored by it), or a run's ``config.yaml`` (its ``distill.<method>.<modality>``);
4. the command-line flags;
5. ``--set KEY=VALUE`` (:mod:`flatkd.runs.settings`).

Example file::

    ics: {epochs: 12, optim: {lr: 0.001}}
    kd: {temperature: 2.0, t2_scaling: true}
    pkd: {phase_starts: [0, 2, 4]}
    genkd: {epochs: 4, loss: {ad_weight: 0.2, ramp_fraction: 0.5}}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flatkd.config import merge, to_dict
from flatkd.distill.genkd import GenKDConfig
from flatkd.distill.kd import KDLoss
from flatkd.distill.pkd import PHASED_VARIANTS, PKDConfig
from flatkd.errors import ConfigError
from flatkd.runs.methods import METHODS, Method
from flatkd.runs.rundir import RunDir
from flatkd.runs.settings import differences, recorded_section, resolve
from flatkd.train.config import OptimConfig, ScheduleConfig, StageConfig, TrainConfig


@dataclasses.dataclass
class PKDSettings:
    """PKD's phases (see :class:`flatkd.distill.pkd.PKDConfig`): ``phase_starts`` (``null``: the
    release's proportions) and ``own_head_flattest`` (the release's literal order)."""

    phase_starts: tuple[int, ...] | None = None
    own_head_flattest: bool = False


def parse_phase_starts(text: str, method: Method) -> tuple[int, ...]:
    """``--phase-starts 0,2,4``: the first epoch of each teacher's phase (checked against the chain
    and the IC epochs when the schedule is built, :func:`flatkd.distill.pkd.build_schedule`).
    :class:`ConfigError` for text that is not a list of epochs, or a method without phases.

    >>> parse_phase_starts(" 0, 2,4", Method("pkd", "pkd"))
    (0, 2, 4)
    """
    if method.variant not in PHASED_VARIANTS:
        methods = ", ".join(m.name for m in METHODS.values() if m.variant in PHASED_VARIANTS)
        raise ConfigError(f"--phase-starts: {method.name} has no teacher phases; it applies to {methods}")
    try:
        starts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--phase-starts {text!r}: expected epochs separated by commas, e.g. 0,2,4") from None
    return starts


@dataclasses.dataclass
class GenKDSettings:
    """Generative feature KD: ``teacher_epochs`` train the I-frame teacher's attention head and
    CVAE (its network frozen), then ``epochs`` two-stage epochs fine-tune each student backbone.
    ``loss``: the method's weights and ramp (``loss.ramp_fraction``: the share of ``epochs`` over
    which the reconstruction weight rises; it replaced ``loss.ramp_epochs``, which a recorded
    config naming it is told); ``cvae_optim`` (CVAE and feature adapter) and ``network_optim``
    (student network, attention head and adapter), both on ``schedule``. The controls
    ``genkd-ce`` (``epochs``, ``network_optim``, ``schedule``) and ``genkd-noteacher`` (all but
    ``teacher_epochs``) read the same section, so one file configures the method and its
    controls alike."""

    epochs: int = 6
    teacher_epochs: int = 3
    loss: GenKDConfig = dataclasses.field(default_factory=GenKDConfig)
    cvae_optim: OptimConfig = dataclasses.field(default_factory=lambda: OptimConfig(lr=0.001))
    network_optim: OptimConfig = dataclasses.field(default_factory=lambda: OptimConfig(lr=0.0005))
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.teacher_epochs < 1:
            raise ValueError(f"genkd epochs and teacher_epochs must be at least 1, got {self.epochs}, {self.teacher_epochs}")


@dataclasses.dataclass
class DistillConfig:
    """Everything one method needs for one modality besides what ``flatkd train`` recorded."""

    ics: StageConfig = dataclasses.field(default_factory=StageConfig)
    kd: KDLoss = dataclasses.field(default_factory=KDLoss)
    pkd: PKDSettings = dataclasses.field(default_factory=PKDSettings)
    genkd: GenKDSettings = dataclasses.field(default_factory=GenKDSettings)

    def pkd_config(self, method: Method) -> PKDConfig:
        """The PKD schedule settings of ``method``."""
        return PKDConfig(method.variant, self.pkd.phase_starts, self.pkd.own_head_flattest, self.kd)


def used_sections(method: Method) -> tuple[str, ...]:
    """The :class:`DistillConfig` sections ``method`` reads (the ones recorded in config.yaml)."""
    sections = ["ics"]
    if method.variant != "ce":
        sections.append("kd")
    if method.variant != "ce" and method.variant != "kd":
        sections.append("pkd")
    if method.genkd:
        sections.append("genkd")
    return tuple(sections)


def resolve_settings(
    run: RunDir,
    method: Method,
    modality: str,
    train_config: TrainConfig,
    *,
    resume: bool,
    config_path: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
) -> DistillConfig:
    """The settings of ``method`` for ``modality`` (see the module docstring for the layers).

    Without ``resume``, settings the run already recorded for (method, modality) are an error:
    the stage exists and continuing it needs ``--resume``; with it, flags that change any of them
    are refused, every difference named.
    """
    section = ("distill", method.name, modality)
    recorded = recorded_section(run, section, resume=resume, what=f"distils {modality} with {method.name}")
    defaults = merge(to_dict(DistillConfig()), {"ics": to_dict(train_config.ics)})
    config = resolve(
        DistillConfig, section, defaults=defaults, recorded=recorded, config_path=config_path, flags=flags,
        overrides=overrides,
    )  # fmt: skip
    if recorded is not None:
        resolved = to_dict(config)
        changed = differences(recorded, {k: resolved[k] for k in recorded if k in resolved})
        if changed:
            raise ConfigError(
                f"{run.path} distils {modality} with {method.name} with other settings ({', '.join(changed)});"
                " resume with those (drop the changed flags) or choose a new --run"
            )
    return config


def record_settings(run: RunDir, method: Method, modality: str, config: DistillConfig) -> None:
    """Save the sections ``method`` uses under ``distill.<method>.<modality>``."""
    resolved = to_dict(config)
    run.set_section(["distill", method.name, modality], {k: resolved[k] for k in used_sections(method)})
