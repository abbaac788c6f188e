"""``flatkd distill`` as a library call: one method over the networks of a run directory.

Order of work, so that a missing input is reported before anything is trained:

1. check every prerequisite: the training settings and ``backbone`` checkpoints of the students,
   ``chain.json`` for the chain-ordered methods, the checkpoints of every external teacher, and
   for the CE baseline that its settings are those of ``flatkd train``'s ``ic-ce`` stage (which
   it reuses);
2. record the resolved settings under ``distill.<method>.<modality>`` in ``config.yaml``; warn
   (one line each) where a PKD stage is shorter than its chain (teachers left out,
   :func:`flatkd.distill.pkd.build_schedule`) and where the IC budget differs from the CE
   baseline's (:func:`flatkd.runs.ic_comparisons.budget_differences`): unequal budgets are a
   legitimate experiment, so they are stated (here, in ``distill.md`` and the report), not refused;
3. generative KD (``genkd``, ``pkd+genkd``): the teacher branch, then every student backbone
   that a student or a teacher of this run needs; its controls (``genkd-ce``,
   ``genkd-noteacher``): those student backbones alone (:mod:`flatkd.runs.genkd_stage`);
4. the ICs of every modality (:mod:`flatkd.runs.ic_training`), each into the method's stage;
5. rebuild ``distill.csv`` and ``distill.md`` (:mod:`flatkd.runs.tables`).

Finished stages are skipped (on ``--resume``, and for the CE baseline always), unfinished ones
continue from their last epoch, so ``--resume`` after a kill gives the numbers of an uninterrupted
run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

from flatkd.config import to_dict
from flatkd.distill.pkd import PKDSchedule
from flatkd.errors import ConfigError
from flatkd.progress import ProgressFactory, logged_stage, no_progress
from flatkd.runs.chain import Chain, read_chain
from flatkd.runs.data_source import resolve_data_source
from flatkd.runs.distill_settings import DistillConfig, record_settings
from flatkd.runs.genkd_stage import finetune_networks, genkd_complete, genkd_stage, train_genkd
from flatkd.runs.ic_comparisons import budget_differences
from flatkd.runs.ic_training import Selection, ic_schedule, stage_complete, train_ics
from flatkd.runs.methods import GENKD_FINETUNES, GENKD_STUDENTS, GENKD_TEACHER, Method
from flatkd.runs.rundir import RunDir
from flatkd.runs.stages import FINAL_TRAIN_STAGE, Stage
from flatkd.runs.tables import write_tables
from flatkd.runs.training import load_train_config
from flatkd.runs.wise import read_wise_results
from flatkd.train import TrainConfig
from flatkd.train.distributed import LOCAL, Dist
from flatkd.train.loop import EpochCallback

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StageReport:
    """What happened to one stage of one modality: ``trained``, or ``reused`` (already finished)."""

    stage: str
    modality: str
    status: str


def train_configs(run: RunDir, modalities: Sequence[str], workers: int | None = None) -> dict[str, TrainConfig]:
    """The training settings of each modality (``workers`` overridden, it changes no number)."""
    configs = {m: load_train_config(run, m) for m in modalities}
    if workers is not None:
        configs = {m: dataclasses.replace(c, workers=workers) for m, c in configs.items()}
    return configs


def distill(
    run: RunDir,
    method: Method,
    configs: Mapping[str, DistillConfig],
    *,
    select: Selection = "network",
    resume: bool = False,
    workers: int | None = None,
    env: Dist = LOCAL,
    progress: ProgressFactory = no_progress,
    on_epoch_end: EpochCallback | None = None,
) -> list[StageReport]:
    """Run ``method`` on the modalities in ``configs`` (modality -> resolved settings); under
    torchrun every process calls it with its ``env`` and rank 0 writes the files. ``select``:
    checkpoint selection of the ICs on validation (:mod:`flatkd.runs.ic_training`)."""
    if not configs:
        raise ConfigError(f"{method.name}: no trained network to distil in {run.path}")
    for modality in configs:
        if not method.trains(modality):
            raise ConfigError(
                f"{method.name} does not train the {modality} network (it teaches); choose among"
                f" {', '.join(GENKD_STUDENTS)}"
            )
    chain = read_chain(run) if method.needs_chain else None
    schedules = {m: ic_schedule(method, m, c, chain) for m, c in configs.items()}
    if env.is_main:
        _warn_dropped_teachers(method, schedules)
    teachers = {m: s.external_teachers() for m, s in schedules.items()}
    genkd_students = _genkd_students(method, configs, teachers)
    networks = {*configs, *genkd_students, *(t for ts in teachers.values() for t in ts)}
    finetuned = finetune_networks(method.finetune, genkd_students) if genkd_students else ()
    networks |= set(finetuned)
    trains = train_configs(run, sorted(networks), workers)
    _check_prerequisites(run, method, configs, trains, teachers, finetuned)
    jobs = [f"distill.{method.name}"] + ([f"finetune.{method.finetune}"] if finetuned else [])
    progress_files = [run.resume_path(method.stage, m) for m in configs]
    progress_files += [run.resume_path(genkd_stage(method.finetune, n), n) for n in finetuned]
    sections = {("distill", method.name, m): progress_files for m in configs}
    with run.writing(jobs, sections, main=env.is_main):
        return _run_stages(
            run, method, configs, trains, chain, finetuned,
            select=select, resume=resume, env=env, progress=progress, on_epoch_end=on_epoch_end,
        )  # fmt: skip


def _run_stages(
    run: RunDir,
    method: Method,
    configs: Mapping[str, DistillConfig],
    trains: Mapping[str, TrainConfig],
    chain: Chain | None,
    finetuned: Sequence[str],
    *,
    select: Selection,
    resume: bool,
    env: Dist,
    progress: ProgressFactory,
    on_epoch_end: EpochCallback | None,
) -> list[StageReport]:
    """Record the settings, then train (or reuse) the fine-tune stages and every modality's IC
    stage of ``method``; the run's distillation tables are rewritten at the end."""
    if env.is_main:
        for modality, config in configs.items():
            record_settings(run, method, modality, config)
        _warn_unequal_budget(run, method, configs)
    env.barrier()
    source = resolve_data_source(run, None)
    reports = []
    with logged_stage(log, f"distill {method.name}", ", ".join(configs)):
        if finetuned:
            settings = next(iter(configs.values())).genkd
            for network in finetuned:
                done = genkd_complete(run, method.finetune, network, settings, trains[network])
                if not done:
                    train_genkd(
                        run, method.finetune, network, settings, trains[network], source,
                        resume=resume, env=env, progress=progress, on_epoch_end=on_epoch_end,
                    )  # fmt: skip
                reports.append(_report(genkd_stage(method.finetune, network), network, done))
        for modality, config in configs.items():
            reuse = resume or method.name == "ce"
            done = reuse and stage_complete(run, method, modality, config, trains[modality], chain, select)
            if not done:
                train_ics(
                    run, method, modality, config, trains, source, chain, select=select,
                    resume=reuse, env=env, progress=progress, on_epoch_end=on_epoch_end,
                )  # fmt: skip
            reports.append(_report(method.stage, modality, done))
    if env.is_main:
        write_tables(run, read_wise_results(run))
    env.barrier()
    return reports


def _warn_dropped_teachers(method: Method, schedules: Mapping[str, PKDSchedule]) -> None:
    """One warning line per student whose IC stage has fewer epochs than the chain has teachers
    (the schedule left some out, :func:`flatkd.distill.pkd.build_schedule`)."""
    for modality, schedule in schedules.items():
        if schedule.dropped:
            phases = " -> ".join(f"{t.label} (epoch {e + 1})" for t, e in zip(schedule.teachers, schedule.starts))
            log.warning(
                f"{method.name} {modality}: {len(schedule.teachers)} IC epochs for"
                f" {len(schedule.teachers) + len(schedule.dropped)} teachers: {phases}, left out:"
                f" {', '.join(t.label for t in schedule.dropped)}; train the ICs one epoch per teacher or more"
                " to keep them all"
            )


def _warn_unequal_budget(run: RunDir, method: Method, configs: Mapping[str, DistillConfig]) -> None:
    """One warning line when ``method``'s IC stages (as recorded) have another budget than the CE
    baseline's: they are still compared, and every table marks the comparison as unequal."""
    changed = [f"{m} {d}" for m in configs for d in budget_differences(run, method, m)]
    if changed:
        log.warning(
            f"{method.name}'s IC budget differs from the ce baseline's (ce -> {method.name}: {'; '.join(changed)}):"
            " distill.md and the report compare them as unequal budgets; keep ce's settings (as `flatkd train`"
            " recorded them) for a like-for-like comparison"
        )


def _report(stage: str, modality: str, reused: bool) -> StageReport:
    """The :class:`StageReport` of a stage; a reused one is logged (a trained one logged itself)."""
    if reused:
        log.info("%s %s: finished before, reused", stage, modality)
    return StageReport(stage, modality, "reused" if reused else "trained")


def _genkd_students(
    method: Method, configs: Mapping[str, DistillConfig], teachers: Mapping[str, Sequence[str]]
) -> tuple[str, ...]:
    """The networks whose fine-tuned (generative-KD or control) backbones this run needs (as
    students or as teachers)."""
    if not method.genkd:
        return ()
    needed = {*configs, *(t for ts in teachers.values() for t in ts)}
    settings = [c.genkd for c in configs.values()]
    if any(s != settings[0] for s in settings):
        raise ConfigError("genkd: every modality must use the same genkd settings (they share the teacher)")
    return tuple(m for m in GENKD_STUDENTS if m in needed)


def _check_prerequisites(
    run: RunDir,
    method: Method,
    configs: Mapping[str, DistillConfig],
    trains: Mapping[str, TrainConfig],
    teachers: Mapping[str, Sequence[str]],
    finetuned: Sequence[str],
) -> None:
    """Every checkpoint the method reads exists (else the error names the command to run); the CE
    baseline's settings match ``ic-ce``'s. ``finetuned``: the networks of the fine-tune stages
    (the I-frame teacher among them for generative KD)."""
    if GENKD_TEACHER in finetuned:
        run.existing_checkpoint(FINAL_TRAIN_STAGE, GENKD_TEACHER)
    for modality in {*configs, *(m for m in finetuned if m != GENKD_TEACHER)}:
        run.existing_checkpoint(Stage.BACKBONE, modality)
    for modality, external in teachers.items():
        for teacher in external:
            if method.teacher_stage(teacher) not in GENKD_FINETUNES:
                run.existing_checkpoint(method.teacher_stage(teacher), teacher)
    if method.name == "ce":
        for modality, config in configs.items():
            ours, theirs = to_dict(config.ics), to_dict(trains[modality].ics)
            changed = [k for k in ours if ours[k] != theirs[k]]
            if changed:
                raise ConfigError(
                    f"the CE baseline is the ic-ce stage `flatkd train` ran for {modality}, with other IC settings"
                    f" ({', '.join('ics.' + k for k in changed)}); drop those settings or retrain with them"
                    " (`flatkd train --ic-epochs ...`)"
                )
