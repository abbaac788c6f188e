"""The error the landscape tools raise for a model, criterion or data set they cannot use."""

from __future__ import annotations

from flatkd.errors import FlatkdError


class LandscapeInputError(FlatkdError):
    """The model, criterion or data passed to a flatness measurement cannot be used as given:
    an empty data iterable, a model without trainable parameters, batches whose inputs and targets
    disagree in size, a multi-exit model used without choosing an exit, a non-scalar loss."""
