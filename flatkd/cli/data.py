"""``flatkd data``: the commands that turn video files into what flatkd trains on.

Each subcommand lives in its own module ``flatkd/cli/data_<name>.py`` and is imported on use.
"""

from __future__ import annotations

import click

from flatkd.cli.common import LazyGroup

# name -> "module:attribute" of the click command implementing it
_DATA_COMMANDS: dict[str, str] = {
    "inspect": "flatkd.cli.data_inspect:inspect",
    "transcode": "flatkd.cli.data_transcode:transcode",
    "extract": "flatkd.cli.data_extract:extract",
    "synth": "flatkd.cli.data_synth:synth",
    "lists": "flatkd.cli.data_lists:lists",
    "cache": "flatkd.cli.data_cache:cache",
}


@click.group(cls=LazyGroup, lazy=_DATA_COMMANDS)
def data() -> None:
    """Video data: inspect compressed streams, transcode them to the canonical format, extract
    I-frames, motion vectors and residuals, generate the synthetic dataset, write split lists for
    class folders, and build the modality cache that training reads.

    \b
    Your own videos or UCF-101/HMDB-51:
      flatkd data inspect VIDEO...                 # codec, GOP layout, B-frames?
      flatkd data transcode SRC... --out DIR       # to MPEG-4 Part 2, GOP 12, P-only
      flatkd data lists DIR                        # DIR/<Class>/<clip>.* -> DIR/splits/ lists
      flatkd data cache DATASET_DIR                # decode once, store what training needs
    The built-in synthetic set:
      flatkd data synth --out data/synth && flatkd data cache data/synth
    """
