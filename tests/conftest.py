"""Test-wide settings: one torch thread per xdist worker, deterministic algorithms."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
