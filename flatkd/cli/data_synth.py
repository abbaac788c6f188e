"""``flatkd data synth``: write the built-in synthetic compressed-action dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from flatkd.cli.common import progress
from flatkd.data.synth import SynthSettings, class_table, generate_synthetic
from flatkd.data.synth.design import DESIGNS

if TYPE_CHECKING:
    from flatkd.data.sanity import ProbeResult


def _parse_size(value: str) -> tuple[int, int]:
    """``128`` (square) or ``160x128`` (width x height)."""
    parts = value.lower().split("x")
    if len(parts) in (1, 2) and all(p.isdigit() for p in parts):
        width, height = int(parts[0]), int(parts[-1])
        return width, height
    raise click.BadParameter(f"expected N or WxH, got {value!r}")


@click.command()
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Dataset directory to create (videos/, splits/, synth.json).",
)
@click.option(
    "--classes", default=SynthSettings.classes, show_default=True, help="Number of classes (even, 4-10)."
)
@click.option(
    "--design",
    type=click.Choice(list(DESIGNS)),
    default=SynthSettings.design,
    show_default=True,
    help="Class design: families (every modality sees most of the class) or factorial (flatkd 0.1's).",
)
@click.option("--clips-per-class", default=SynthSettings.clips_per_class, show_default=True)
@click.option(
    "--clips-per-group",
    default=SynthSettings.clips_per_group,
    show_default=True,
    help="Clips sharing one scene (UCF-style group gNN; splits keep groups together).",
)
@click.option(
    "--frames", default=SynthSettings.frames, show_default=True, help="Frames per clip (GOP of 12)."
)
@click.option("--size", default="128", show_default=True, help="Frame size: N (square) or WxH, even pixels.")
@click.option(
    "--difficulty",
    type=click.FloatRange(0.0, 1.0),
    default=SynthSettings.difficulty,
    show_default=True,
    help="0 clean .. 1 hard: noise, clutter, camera pan, hue jitter, weaker cues.",
)
@click.option("--seed", default=SynthSettings.seed, show_default=True, help="Same seed, same bytes.")
@click.option(
    "--test-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=SynthSettings.test_fraction,
    show_default=True,
    help="Share of each class's groups every split holds out for testing.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Afterwards cache the set (DIR/cache) and report a linear probe per modality, their late "
    "fusion and the modalities' top-class agreement on split 1's test list.",
)
@click.option("--format", "suffix", type=click.Choice([".avi", ".mp4"]), default=".avi", show_default=True)
@click.option(
    "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes  [default: all CPUs]."
)
@click.pass_context
def synth(
    ctx: click.Context,
    out: Path,
    classes: int,
    design: str,
    clips_per_class: int,
    clips_per_group: int,
    frames: int,
    size: str,
    difficulty: float,
    seed: int,
    test_fraction: float,
    check: bool,
    suffix: str,
    jobs: int | None,
) -> None:
    """Write a seeded synthetic action dataset as real canonical MPEG-4 videos with UCF-101-style
    split lists, so that everything downstream runs without downloading anything.

    Design `families` (default), shaped like real compressed video: classes come in families
    (a motion pattern, an actor shape, a landmark hue) that every modality sees, and the two
    members of a family (Calm, Brisk) differ at once in landmark shade (I-frames), speed (motion
    vectors) and shading flicker (residuals), each read with its own noise from one latent per
    clip. Every modality can name the class, they agree on most clips, and fusion gains. Design
    `factorial` is flatkd 0.1's set (each modality sees one of three factors), kept so that old
    results reproduce byte for byte.

    \b
    Example:
      flatkd data synth --out data/synth --check
      flatkd data synth --out data/tiny --classes 4 --clips-per-class 8 --frames 24 --size 64

    An interrupted run can be repeated with the same options: finished clips are kept.
    """
    width, height = _parse_size(size)
    settings = SynthSettings(
        classes=classes,
        clips_per_class=clips_per_class,
        clips_per_group=clips_per_group,
        frames=frames,
        width=width,
        height=height,
        difficulty=difficulty,
        seed=seed,
        suffix=suffix,
        design=design,
        test_fraction=test_fraction,
    )
    generate_synthetic(out, settings, jobs=jobs, progress=progress)
    names = ", ".join(spec.name for spec in class_table(classes, design))
    click.echo(f"wrote {classes * clips_per_class} clips of {classes} classes to {out} ({names})")
    if check:
        from flatkd.cli.data_cache import cache
        from flatkd.data.cache import default_cache_dir
        from flatkd.data.sanity import probe_dataset

        ctx.invoke(cache, dataset_dir=out, jobs=jobs)
        result = probe_dataset(out, default_cache_dir(out), progress=progress)
        click.echo(probe_summary(result, num_classes=classes))


def probe_summary(result: ProbeResult, num_classes: int) -> str:
    """The probe's accuracies and agreements as lines for the terminal."""
    accuracy = ", ".join(f"{name} {100 * value:.1f}%" for name, value in result.accuracy().items())
    agreement = ", ".join(f"{a}-{b} {100 * value:.1f}%" for (a, b), value in result.agreement().items())
    return (
        f"linear probe, split 1 test ({len(result.labels)} clips, chance {100 / num_classes:.1f}%): {accuracy}\n"
        f"top-class agreement of the modality probes: {agreement}"
    )
