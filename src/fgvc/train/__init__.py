"""Training: the LightningModule, losses, optimizers and schedules, callbacks, and one config -> one run."""
