"""Lightning's start-up chatter kept out of fgvc's output."""

from __future__ import annotations

import logging
import warnings


def quiet_lightning() -> None:
    """Keep Lightning's start-up chatter (GPU/TPU lines, tips) out of fgvc's output."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # the module normalises uint8 batches in on_after_batch_transfer on purpose
    warnings.filterwarnings("ignore", message=r".*overridden `on_(before|after)_batch_transfer`.*")
    # a resumed run writes into its own checkpoints folder on purpose
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
    # tiny data sets have fewer batches than the logging interval: fgvc logs per epoch anyway
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
