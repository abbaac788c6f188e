"""The mean loss over a fixed data subset as a function of the flat trainable-parameter vector.

For a model :math:`f(x; \\theta)`, a criterion :math:`\\ell` with mean reduction and batches
:math:`B_1, \\dots, B_K` of sizes :math:`n_b` (:math:`N = \\sum_b n_b`),

.. math:: L(\\theta) = \\sum_b \\frac{n_b}{N} \\, \\ell\\big(f(X_b; \\theta), Y_b\\big),

the mean loss over the subset. The model is evaluated with
:func:`torch.func.functional_call`, never by writing into its parameters: the trained weights
``theta`` are a detached copy taken at construction, frozen parameters and buffers are detached
copies too (in the measurement's dtype), and every forward runs in eval mode (BatchNorm uses its
running statistics and never updates them). The model object is left exactly as it was, mode
flags included.

**Several processes** (``env``, a :class:`flatkd.train.Dist` under torchrun): each process holds a
disjoint shard of the subset's batches and every weight is :math:`n_b / N` with :math:`N` the
clips of *all* shards, so the process-local sum :meth:`Objective.loss` is process :math:`r`'s
share :math:`L_r` and :math:`L = \\sum_r L_r`. What is linear in the loss is the sum of the
shares: the gradient (:meth:`Objective.gradient`), a Hessian-vector product
(:class:`flatkd.landscape.HessianOperator`) and a loss value with its correct-count
(:meth:`Objective.evaluate`) are each one all-reduce of the per-process results, so every process
sees the numbers one process with the whole subset computes (up to the order of floating-point
sums) and every estimator above runs unchanged, in lockstep, on all of them.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from flatkd.landscape.batches import Batch, load_batches
from flatkd.landscape.errors import LandscapeInputError
from flatkd.landscape.modes import eval_mode
from flatkd.landscape.params import ParameterSpace
from flatkd.train.distributed import LOCAL, Dist

logger = logging.getLogger(__name__)

#: Exceptions a user's model or criterion raises on inputs it cannot take (wrong shapes, types).
_USER_MODEL_ERRORS = (RuntimeError, ValueError, IndexError, TypeError)


@dataclass(frozen=True)
class Evaluation:
    """Mean loss over the subset and, for classifiers, top-1 accuracy (a fraction in [0, 1])."""

    loss: float
    accuracy: float | None


class Objective:
    """:math:`L(\\theta)`, the mean loss of ``model`` under ``criterion`` over the batches of ``data``.

    Args:
        model: any module; its forward must return one tensor of outputs (wrap multi-exit
            networks in :class:`flatkd.landscape.SelectExit`).
        criterion: ``criterion(outputs, targets)`` -> scalar batch-mean loss.
        data: iterable of ``(inputs, targets)`` batches, read once (see :mod:`.batches`).
        dtype: floating dtype of the computation; ``None`` takes the parameters' dtype.
            ``torch.float64`` gives reference-quality numbers for tests.
        env: the processes sharing the subset (module docstring); ``data`` is this process's
            shard. Every process must construct the objective and call the same methods in
            the same order (each reduction is a collective).
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: Any,
        data: Iterable[Any],
        *,
        dtype: torch.dtype | None = None,
        env: Dist = LOCAL,
    ) -> None:
        self.model = model
        self.env = env
        self.criterion = criterion
        trainable = dict(model.named_parameters())
        self.space = ParameterSpace.of(model)
        first = trainable[self.space.names[0]]
        self.dtype = dtype or first.dtype
        if not self.dtype.is_floating_point:
            raise LandscapeInputError(f"dtype must be a floating type, got {self.dtype}")
        self.device = first.device
        shard = load_batches(data, dtype=self.dtype, device=self.device)
        #: clips in the whole subset (all processes' shards)
        self.clips = int(env.sum(torch.tensor([float(sum(len(b.targets) for b in shard))])))
        self.batches = [replace(b, weight=len(b.targets) / self.clips) for b in shard]
        self._set_point({n: _cast(trainable[n], self.dtype) for n in self.space.names})
        self.classifier = self._check_first_batch()
        used = self._used_parameters()
        if not used:
            raise LandscapeInputError("the loss does not depend on any trainable parameter of the model")
        if len(used) < len(self.space.names):
            logger.info("ignoring %d parameter tensors the loss does not use", len(self.space.names) - len(used))
            self.space = self.space.restricted(used)
            self._set_point({n: _cast(trainable[n], self.dtype) for n in self.space.names})

    @property
    def dim(self) -> int:
        return self.space.dim

    def _set_point(self, parameters: dict[str, torch.Tensor]) -> None:
        """Take ``parameters`` as the trained weights; every other parameter and buffer becomes
        a constant (a private copy in the measurement's dtype)."""
        self.theta = self.space.flatten(parameters)
        self.constants = {
            name: _cast(t, self.dtype)
            for name, t in [*self.model.named_parameters(), *self.model.named_buffers()]
            if name not in parameters
        }

    def _used_parameters(self) -> set[str]:
        """Names of the trainable parameters the loss on batch 0 depends on at all (a multi-exit
        network's chosen exit does not use later layers or other heads); they span the space
        in which curvature is measured."""
        leaves = {n: t.detach().requires_grad_(True) for n, t in self.space.unflatten(self.theta).items()}
        batch = self.batches[0]
        with eval_mode(self.model):
            out = functional_call(self.model, {**leaves, **self.constants}, (batch.inputs,))
        grads = torch.autograd.grad(self.criterion(out, batch.targets), list(leaves.values()), allow_unused=True)
        return {name for name, g in zip(leaves, grads) if g is not None}

    def outputs(
        self, flat: torch.Tensor, inputs: torch.Tensor, constants: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Model outputs at parameters ``flat`` (eval mode, nothing written to the model).

        ``constants`` replaces the frozen parameters and buffers (interpolating checkpoints).
        """
        fixed = self.constants if constants is None else constants
        with eval_mode(self.model):
            out = functional_call(self.model, {**self.space.unflatten(flat), **fixed}, (inputs,))
        if isinstance(out, list | tuple):
            raise LandscapeInputError(
                f"the model returns {len(out)} outputs (a multi-exit network?): wrap it as "
                "flatkd.landscape.SelectExit(model, exit_index) to measure one exit"
            )
        return out

    def batch_loss(self, flat: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Criterion value on one batch at parameters ``flat`` (differentiable in ``flat``)."""
        return self.criterion(self.outputs(flat, batch.inputs), batch.targets)

    def loss(self, flat: torch.Tensor) -> torch.Tensor:
        """:math:`L(\\theta)` at ``flat``: the batch-size-weighted mean over all batches
        (differentiable; with several processes this process's share :math:`L_r`)."""
        return sum(batch.weight * self.batch_loss(flat, batch) for batch in self.batches)

    def gradient(self, flat: torch.Tensor) -> tuple[float, torch.Tensor]:
        """:math:`(L(\\theta), \\nabla L(\\theta))` at ``flat``, summed over the processes
        (one forward and backward per batch, one all-reduce)."""
        point = flat.detach().requires_grad_(True)
        loss = self.loss(point)
        (gradient,) = torch.autograd.grad(loss, point)
        total = self.env.all_reduce(torch.cat([gradient, loss.detach().reshape(1)]))
        return float(total[-1]), total[:-1]

    @functools.cached_property
    def centre(self) -> Evaluation:
        """Loss and accuracy at the trained weights, evaluated once and shared by every surface,
        summary and record made from this objective."""
        return self.evaluate(self.theta)

    @torch.no_grad()
    def evaluate(self, flat: torch.Tensor, constants: dict[str, torch.Tensor] | None = None) -> Evaluation:
        """Loss and (for classifiers) accuracy at ``flat``, without building a graph.

        Runs a private eval-mode replica of the model whose tensors are overwritten with ``flat``
        (and ``constants``, if given): per call, ``functional_call``'s re-parametrisation costs
        ~0.4 ms, 3-15% of a small model's forward, which matters for a surface's hundreds of
        points, and the replica can use a faster memory layout (see ``_replica``). The user's
        model is not touched.
        """
        tensors = self._replica_tensors
        for name, value in self.space.unflatten(flat).items():
            tensors[name].copy_(value)
        if constants is not None or self._replica_constants_changed:
            for name, value in (self.constants if constants is None else constants).items():
                tensors[name].copy_(value)
            self._replica_constants_changed = constants is not None
        sums = torch.zeros(2, dtype=torch.float64, device=self.device)  # loss, correct: summed on the device
        for batch in self.batches:
            out = self._replica(batch.inputs)
            sums[0] += batch.weight * self.criterion(out, batch.targets).double()
            if self.classifier:
                sums[1] += (out.argmax(dim=1) == batch.targets).sum()
        loss, correct = self.env.all_reduce(sums).tolist()
        return Evaluation(loss, correct / self.clips if self.classifier else None)

    @functools.cached_property
    def _replica(self) -> nn.Module:
        """A private copy of the model in eval mode and the objective's dtype, for :meth:`evaluate`.

        A convolutional model's copy gets channels-last weights, which oneDNN's CPU convolutions
        run 1.4-2x faster (measured on the benchmark CNN and the ``cpu-tiny`` preset); the layout
        changes rounding only (~1e-7 relative). A model that cannot run that way (e.g. it calls
        ``.view`` on a convolution's output) or whose outputs then disagree keeps the default
        layout. The choice depends on the model alone, so results repeat exactly.
        """
        replica = copy.deepcopy(self.model).to(self.dtype).eval()
        for parameter in replica.parameters():
            parameter.requires_grad_(False)
            parameter.grad = None
        self._replica_constants_changed = True  # the first evaluation writes the constants too
        if any(parameter.ndim == 4 for parameter in replica.parameters()):
            fast = copy.deepcopy(replica).to(memory_format=torch.channels_last)
            if _same_outputs(replica, fast, self.batches[0].inputs):
                return fast
        return replica

    @functools.cached_property
    def _replica_tensors(self) -> dict[str, torch.Tensor]:
        return {**dict(self._replica.named_parameters()), **dict(self._replica.named_buffers())}

    def _check_first_batch(self) -> bool:
        """Run batch 0 once; turn a model/criterion/data mismatch into one clear line.

        Returns whether the task is classification (2-D logits, 1-D integer labels), in which
        case accuracy is recorded beside the loss.
        """
        batch = self.batches[0]
        try:
            with torch.no_grad():
                out = self.outputs(self.theta, batch.inputs)
        except _USER_MODEL_ERRORS as exc:
            raise LandscapeInputError(
                f"the model fails on batch 0 (inputs {tuple(batch.inputs.shape)}): {_first_line(exc)}"
            ) from None
        try:
            with torch.no_grad():
                loss = self.criterion(out, batch.targets)
        except _USER_MODEL_ERRORS as exc:
            raise LandscapeInputError(
                f"the criterion fails on outputs {tuple(out.shape)} and targets "
                f"{tuple(batch.targets.shape)} of batch 0: {_first_line(exc)}"
            ) from None
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise LandscapeInputError(
                "the criterion must return a scalar batch-mean loss (e.g. reduction='mean')"
            )
        if not torch.isfinite(loss):
            raise LandscapeInputError(f"the loss at the given weights is not finite ({float(loss)})")
        return out.ndim == 2 and batch.targets.ndim == 1 and not batch.targets.is_floating_point()


@torch.no_grad()
def _same_outputs(model: nn.Module, other: nn.Module, inputs: torch.Tensor) -> bool:
    """Whether ``other`` runs on ``inputs`` and agrees with ``model`` to rounding."""
    expected = model(inputs)
    try:
        actual = other(inputs)
    except RuntimeError:
        return False
    scale = float(expected.abs().max()) or 1.0
    return actual.shape == expected.shape and bool(torch.allclose(actual, expected, rtol=1e-4, atol=1e-5 * scale))


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A detached private copy; floating tensors in ``dtype``."""
    tensor = tensor.detach()
    return tensor.to(dtype=dtype, copy=True) if tensor.is_floating_point() else tensor.clone()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
