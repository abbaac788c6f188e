"""Is a trained network degenerate? Its test predictions by class, against chance, and the epochs
its weights come from, read from a run directory.

:func:`diagnose_network` turns the final exit of a stage's saved logits into a
:class:`flatkd.stats.ClassReport` (confusion matrix, per-class accuracy, chance levels) and names
what is wrong with it: one class predicted for every clip, or an accuracy inside (or below) the
95% range of chance (:func:`flatkd.stats.chance_interval` at ``max(1/K, majority-class rate)``).
:func:`stage_epochs` gives the epoch each training stage kept (the best on validation, from the
checkpoint's ``epoch`` metadata) beside the epochs it ran (its rows of ``metrics.csv``).
:func:`write_confusion_figures` draws ``figures/confusion_<modality>.png``. ``flatkd report``
shows all of it; ``flatkd rank-modalities`` warns about every ranked network with a problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flatkd.errors import InputFileError
from flatkd.fileio import read_tensor_metadata
from flatkd.modalities import MODALITIES
from flatkd.plots import save_figure
from flatkd.plots.diagnostics import confusion_figure
from flatkd.runs.rundir import RunDir
from flatkd.runs.stages import FINAL_TRAIN_STAGE, TRAIN_STAGES, Stage
from flatkd.runs.training import load_train_config
from flatkd.stats import ClassReport, class_report


@dataclass(frozen=True)
class NetworkDiagnosis:
    """The final exit of ``modality``'s ``stage`` network on ``split``, by class (``classes``:
    the class names in label order)."""

    modality: str
    stage: str
    split: str
    classes: tuple[str, ...]
    report: ClassReport

    @property
    def network(self) -> str:
        """How messages name the network: ``mv (ic-ce, final exit)``."""
        return f"{self.modality} ({self.stage}, final exit)"

    @property
    def problems(self) -> list[str]:
        """What is wrong with the predictions (empty for a network that learned something)."""
        report, found = self.report, []
        if report.single_class:
            only = self.classes[report.predicted_classes[0]]
            found.append(f"predicts class {only!r} for every one of its {report.n} {self.split} clips")
        if report.at_chance:
            chance, accuracy = report.chance, report.correct / report.n
            where = "below" if accuracy < chance.low else "within"
            found.append(
                f"{self.split} accuracy {accuracy:.1%} ({report.correct}/{report.n}) is {where} the 95% range of"
                f" chance ({chance.estimate:.1%}: {chance.low:.1%}-{chance.high:.1%} on {report.n} clips)"
            )
        return found


@dataclass(frozen=True)
class StageEpochs:
    """The epoch a training stage kept (0-based as stored; None when its checkpoint is not in the
    run directory), the epochs it ran and those it was set to run."""

    stage: str
    chosen: int | None
    run: int
    planned: int


def diagnose_network(
    run: RunDir, modality: str, stage: str = FINAL_TRAIN_STAGE, split: str = "test"
) -> NetworkDiagnosis | None:
    """:class:`NetworkDiagnosis` of the final exit in ``logits/<stage>/<modality>.<split>`` (None
    when the file holds no clips); the class names come from the run's ``data.classes`` (label
    numbers where the run has none)."""
    logits, labels = run.load_logits(stage, modality, split)
    if not len(labels):
        return None
    count = logits.shape[-1]
    recorded = run.read_config().get("data", {}).get("classes") or []
    classes = tuple(str(c) for c in recorded) if len(recorded) == count else tuple(str(k) for k in range(count))
    report = class_report(logits[:, -1].argmax(dim=-1).numpy(), labels.numpy(), count)
    return NetworkDiagnosis(modality, stage, split, classes, report)


def diagnose_run(run: RunDir, split: str = "test") -> list[NetworkDiagnosis]:
    """:func:`diagnose_network` of every trained modality (canonical order) whose training saved
    ``split`` logits: of stage ``ic-ce``, else ``backbone`` (training unfinished)."""
    found = []
    trained = run.read_config().get("train") or {}
    for modality in (m for m in MODALITIES if m in trained):
        stage = next((s for s in reversed(TRAIN_STAGES) if run.logits_path(s, modality, split).is_file()), None)
        diagnosis = None if stage is None else diagnose_network(run, modality, stage, split)
        if diagnosis is not None:
            found.append(diagnosis)
    return found


def stage_epochs(run: RunDir, modality: str) -> list[StageEpochs]:
    """The chosen, run and planned epochs of each ``flatkd train`` stage of ``modality``."""
    config = load_train_config(run, modality)
    metrics = run.read_metrics()
    planned = {Stage.BACKBONE: config.backbone.epochs, Stage.IC_CE: config.ics.epochs}
    epochs = []
    for stage in TRAIN_STAGES:
        done = 0 if metrics.empty else int(((metrics["stage"] == stage) & (metrics["modality"] == modality)).sum())
        epochs.append(StageEpochs(stage, _chosen_epoch(run.checkpoint_path(stage, modality)), done, planned[stage]))
    return epochs


def write_confusion_figures(run: RunDir, diagnoses: list[NetworkDiagnosis]) -> list[Path]:
    """``figures/confusion_<modality>.png`` of each diagnosed network; returns what was written."""
    written = []
    for d in diagnoses:
        title = f"{d.network}: {d.report.correct}/{d.report.n} {d.split} clips right"
        written += save_figure(confusion_figure(d.report.confusion, d.classes, title), run.figures_dir / f"confusion_{d.modality}.png")
    return written


def _chosen_epoch(checkpoint: Path) -> int | None:
    """The ``epoch`` metadata of a stage's best weights; None without the file or the entry, or
    when the file cannot be read (the commands that load it say why)."""
    if not checkpoint.is_file():
        return None
    try:
        value = read_tensor_metadata(checkpoint).get("epoch")
        return None if value is None else int(value)
    except (InputFileError, ValueError):
        return None
