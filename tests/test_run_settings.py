"""The settings resolver of the commands that record their settings in a run
(:mod:`flatkd.runs.settings`): the layer order defaults < recorded < --config < flags < --set, a
partial nested section, a run's whole ``config.yaml`` as the --config file, flags left at None,
``--resume`` and malformed ``--set`` pairs. Real settings dataclasses, a real run directory."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.cli import assert_one_line_error, run_flatkd

from flatkd.config import from_dict, merge, to_dict
from flatkd.distill.kd import KDLoss
from flatkd.distill.wise import WiseConfig
from flatkd.errors import ConfigError, FlatkdError
from flatkd.runs.distill_settings import DistillConfig, PKDSettings
from flatkd.runs.rundir import RunDir
from flatkd.runs.settings import given, parse_overrides, recorded_section, resolve
from flatkd.train import OptimConfig, ScheduleConfig, StageConfig, TrainConfig

TRAIN_MV = ("train", "mv")
DISTILL_PKD_MV = ("distill", "pkd", "mv")

#: What the source run of the --config tests recorded, by section.
RECORDED = {
    TRAIN_MV: TrainConfig(batch_size=7, seed=3, ics=StageConfig(epochs=2, optim=OptimConfig(lr=0.01))),
    DISTILL_PKD_MV: DistillConfig(kd=KDLoss(temperature=4.0), pkd=PKDSettings(phase_starts=(0, 2, 4))),
    ("wise", "pkd"): WiseConfig(order=("mv:0", "iframe:3"), tau=0.9),
}


def _yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _source_run(path: Path, sections: tuple[tuple[str, ...], ...] = tuple(RECORDED)) -> RunDir:
    """A run whose config.yaml holds a data section and the ``sections`` of :data:`RECORDED`."""
    run = RunDir(path)
    run.set_section(["data"], {"dir": "/somewhere", "classes": ["a", "b"]})
    for section in sections:
        run.set_section(list(section), to_dict(RECORDED[section]))
    return run


def test_each_layer_overrides_the_one_below_on_the_same_key(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.set_section(list(TRAIN_MV), {"batch_size": 3})
    layers = {
        "defaults": {"batch_size": 2},
        "recorded": recorded_section(run, TRAIN_MV, resume=True, what="trains mv"),
        "config_path": _yaml(tmp_path / "settings.yaml", {"batch_size": 4}),
        "flags": {"batch_size": 5},
        "overrides": ["batch_size=6"],
    }
    assert resolve(TrainConfig, TRAIN_MV).batch_size == TrainConfig().batch_size == 16
    names = list(layers)
    for top, name in enumerate(names):
        # the layers up to `name`: the top one wins; each layer alone wins over the defaults
        assert resolve(TrainConfig, TRAIN_MV, **{n: layers[n] for n in names[: top + 1]}).batch_size == top + 2, name
        assert resolve(TrainConfig, TRAIN_MV, **{name: layers[name]}).batch_size == top + 2, name


def test_a_partial_nested_section_keeps_the_other_keys(tmp_path: Path) -> None:
    """Every layer names one or two keys of ``ics``; the others come from the layers below.
    The defaults are what ``flatkd distill`` derives: the IC stage ``flatkd train`` used."""
    train = TrainConfig(ics=StageConfig(epochs=2, optim=OptimConfig(name="sgd", lr=0.5, momentum=0.8)))
    run = RunDir(tmp_path / "run")
    run.set_section(list(DISTILL_PKD_MV), {"ics": {"optim": {"lr": 0.1}}, "kd": {"temperature": 3.0}})
    config = resolve(
        DistillConfig,
        DISTILL_PKD_MV,
        defaults=merge(to_dict(DistillConfig()), {"ics": to_dict(train.ics)}),
        recorded=recorded_section(run, DISTILL_PKD_MV, resume=True, what="distils mv with pkd"),
        config_path=_yaml(tmp_path / "settings.yaml", {"ics": {"schedule": {"name": "step", "milestones": [1]}}}),
        flags={"ics": {"epochs": 5}},
        overrides=["ics.optim.weight_decay=0.0", "kd.alpha=0.5"],
    )
    assert config.ics == StageConfig(
        epochs=5,
        optim=OptimConfig(name="sgd", lr=0.1, momentum=0.8, weight_decay=0.0),
        schedule=ScheduleConfig(name="step", milestones=(1,)),
    )
    assert config.kd == KDLoss(temperature=3.0, alpha=0.5)
    assert (config.pkd, config.genkd) == (DistillConfig().pkd, DistillConfig().genkd)


@pytest.mark.parametrize("section", list(RECORDED), ids=".".join)
def test_a_runs_whole_config_yaml_as_the_config_file_takes_its_section(tmp_path: Path, section: tuple[str, ...]) -> None:
    source = _source_run(tmp_path / "source")
    cls = type(RECORDED[section])
    assert resolve(cls, section, config_path=source.config_path) == RECORDED[section]
    # a layer like any other: flags and --set still go over it, key by key
    if cls is TrainConfig:
        config = resolve(cls, section, config_path=source.config_path, flags={"seed": 9}, overrides=["ics.epochs=4"])
        assert (config.seed, config.batch_size, config.ics.epochs, config.ics.optim.lr) == (9, 7, 4, 0.01)


@pytest.mark.parametrize(
    ("section", "recorded"),
    [
        pytest.param(("train", "iframe"), (TRAIN_MV,), id="train.iframe-of-a-run-that-trains-mv"),
        pytest.param(("distill", "kd", "mv"), (DISTILL_PKD_MV,), id="distill.kd.mv-of-a-run-that-distils-pkd"),
        pytest.param(
            ("wise", "pkd"),
            (TRAIN_MV, DISTILL_PKD_MV),
            id="wise.pkd-of-a-run-without-wise",
        ),
        pytest.param(
            DISTILL_PKD_MV,
            (TRAIN_MV,),
            id="distill.pkd.mv-of-a-run-never-distilled",
        ),
    ],
)
def test_a_run_config_lacking_the_section_is_an_error_naming_it(
    tmp_path: Path, section: tuple[str, ...], recorded: tuple[tuple[str, ...], ...]
) -> None:
    source = _source_run(tmp_path / "source", recorded)
    cls = {"train": TrainConfig, "distill": DistillConfig, "wise": WiseConfig}[section[0]]
    expected = f"{source.config_path}: a run config without the section {'.'.join(section)}"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        resolve(cls, section, config_path=source.config_path)


def test_an_unknown_key_in_the_config_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    fields = _yaml(tmp_path / "fields.yaml", {"seed": 1, "batch_sise": 2})
    with pytest.raises(ConfigError, match=re.escape(f"{fields}: unknown key 'batch_sise' (did you mean 'batch_size'?)")):
        resolve(TrainConfig, TRAIN_MV, config_path=fields)
    whole = _yaml(tmp_path / "config.yaml", {"data": {}, "train": {"mv": {"ics": {"optim": {"lrr": 0.1}}}}})
    with pytest.raises(ConfigError, match=re.escape(f"{whole} (train.mv).ics.optim: unknown key 'lrr'")):
        resolve(TrainConfig, TRAIN_MV, config_path=whole)


def test_flags_left_at_none_are_not_a_layer_at_any_depth() -> None:
    recorded = {"batch_size": 3, "seed": 5, "bf16": False, "ics": {"epochs": 4}, "backbone": {"epochs": 2}}
    unset = {"batch_size": None, "weights": None, "backbone": None, "ics": {"epochs": None, "optim": {"lr": None}}}
    assert given(unset) == {}
    assert resolve(TrainConfig, TRAIN_MV, recorded=recorded, flags=unset) == resolve(TrainConfig, TRAIN_MV, recorded=recorded)
    # a flag given as 0 or False is a layer; a nested one keeps its section's other keys
    config = resolve(TrainConfig, TRAIN_MV, recorded=recorded, flags={**unset, "seed": 0, "bf16": True, "ics": {"epochs": 1, "optim": None}})
    assert (config.batch_size, config.seed, config.bf16, config.ics.epochs, config.backbone.epochs) == (3, 0, True, 1, 2)
    assert config.ics.optim == TrainConfig().ics.optim


def test_recorded_settings_need_resume(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    assert recorded_section(run, TRAIN_MV, resume=False, what="trains mv") is None  # nothing recorded yet
    recorded = to_dict(dataclasses.replace(TrainConfig(), batch_size=4))
    run.set_section(list(TRAIN_MV), recorded)
    with pytest.raises(FlatkdError, match=re.escape(f"{run.path} already trains mv; pass --resume to continue it")):
        recorded_section(run, TRAIN_MV, resume=False, what="trains mv")
    assert recorded_section(run, ("train", "iframe"), resume=False, what="trains iframe") is None
    assert recorded_section(run, TRAIN_MV, resume=True, what="trains mv") == recorded
    assert from_dict(TrainConfig, recorded_section(run, TRAIN_MV, resume=True, what="trains mv")).batch_size == 4


def test_parse_overrides_nests_dotted_keys_and_parses_yaml_values() -> None:
    pairs = ["ics.optim.lr=0.01", "ics.epochs=3", "order=[mv, iframe]", "weights=", "device=cpu", "note=a=b"]
    assert parse_overrides(pairs) == {
        "ics": {"optim": {"lr": 0.01}, "epochs": 3},
        "order": ["mv", "iframe"],
        "weights": None,
        "device": "cpu",
        "note": "a=b",
    }


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["batch_size"], "expected KEY=VALUE"),
        (["=3"], "expected KEY=VALUE"),
        ([".lr=0.1"], "expected KEY=VALUE"),
        (["ics..lr=0.1"], "expected KEY=VALUE"),
        (["ics.=0.1"], "expected KEY=VALUE"),
        (["order=[mv, iframe"], "the value is not valid YAML"),
        (["ics=3", "ics.epochs=2"], "ics was already set to a value"),
    ],
    ids=["no-equals", "no-key", "empty-first-name", "empty-middle-name", "empty-last-name", "bad-yaml", "value-then-nested"],
)
def test_parse_overrides_rejects_malformed_pairs(pairs: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"--set {pairs[-1]!r}: {message}")):
        parse_overrides(pairs)


def test_an_unknown_key_in_set_names_the_option() -> None:
    with pytest.raises(ConfigError, match=r"--set.*unknown key 'batch_sise'"):
        resolve(TrainConfig, TRAIN_MV, overrides=["batch_sise=2"])


def test_flatkd_train_takes_its_section_of_another_runs_config_yaml(tmp_path: Path) -> None:
    """Up to the settings only: without --data, the accepted settings stop at the data source."""
    source = _source_run(tmp_path / "source", (TRAIN_MV,))
    new = tmp_path / "new"
    for modality, message in (("mv", "pass --data DIR"), ("iframe", "a run config without the section train.iframe")):
        result = run_flatkd("train", "--modality", modality, "--run", str(new), "--config", str(source.config_path))
        assert_one_line_error(result, message)
    assert not new.exists()
