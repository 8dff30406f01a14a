"""A class-conditional diffusion model from ``diffusers``: UNet2DModel with class embeddings, trained
with DDPM's noise-prediction loss and sampled with DDIM plus classifier-free guidance.

Guidance needs an unconditional model too: during training the label is replaced by an extra
"null" class with probability ``label_dropout``; sampling mixes the two predictions,
eps = eps(x, null) + w * (eps(x, y) - eps(x, null)).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from torchvision.utils import make_grid, save_image

from fgvc.config import DiffusionConfig
from fgvc.runfolder import RunFolder


class ConditionalDiffusion(L.LightningModule):
    def __init__(self, cfg: DiffusionConfig, num_classes: int, samples_dir: Path | None = None, seed: int = 0):
        super().__init__()
        self.cfg, self.num_classes, self.samples_dir, self.seed = cfg, num_classes, samples_dir, seed
        blocks = len(cfg.block_out_channels)
        self.unet = UNet2DModel(
            sample_size=cfg.image_size, in_channels=cfg.channels, out_channels=cfg.channels,
            block_out_channels=tuple(cfg.block_out_channels), layers_per_block=cfg.layers_per_block,
            down_block_types=("DownBlock2D",) * blocks, up_block_types=("UpBlock2D",) * blocks,
            norm_num_groups=8, num_class_embeds=num_classes + 1,  # the last class is "no label"
        )
        self.noise_scheduler = DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule)

    @property
    def null_class(self) -> int:
        return self.num_classes

    def training_step(self, batch, batch_idx):
        images, labels = batch
        drop = torch.rand(len(labels), device=labels.device) < self.cfg.label_dropout
        labels = torch.where(drop, torch.full_like(labels, self.null_class), labels)
        noise = torch.randn_like(images)
        steps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(images),), device=images.device)
        noisy = self.noise_scheduler.add_noise(images, noise, steps)
        loss = F.mse_loss(self.unet(noisy, steps, class_labels=labels).sample, noise)
        if not torch.isfinite(loss):
            from fgvc.errors import NonFiniteLossError

            raise NonFiniteLossError(f"diffusion loss is not finite at epoch {self.current_epoch}, batch {batch_idx}")
        self.log("diffusion/loss", loss, on_epoch=True, on_step=False, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.unet.parameters(), lr=self.cfg.lr, weight_decay=0.0)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, seed: int, steps: int = 50, guidance: float = 2.0) -> torch.Tensor:
        """Images in [0, 1] for ``labels``: DDIM with ``steps`` steps and guidance scale ``guidance``."""
        self.unet.eval()
        scheduler = DDIMScheduler.from_config(self.noise_scheduler.config)
        scheduler.set_timesteps(steps)
        generator = torch.Generator().manual_seed(seed)
        size = self.cfg.image_size
        x = torch.randn(len(labels), self.cfg.channels, size, size, generator=generator).to(self.device)
        labels = labels.to(self.device)
        null = torch.full_like(labels, self.null_class)
        for t in scheduler.timesteps:
            both = self.unet(torch.cat([x, x]), t, class_labels=torch.cat([labels, null])).sample
            conditional, unconditional = both.chunk(2)
            eps = unconditional + guidance * (conditional - unconditional)
            x = scheduler.step(eps, t, x).prev_sample
        self.unet.train()
        return (x.clamp(-1, 1) + 1) / 2

    def on_train_epoch_end(self) -> None:
        if self.samples_dir is not None and self.trainer.is_global_zero:
            per_class = max(1, 32 // self.num_classes)
            labels = torch.arange(self.num_classes).repeat_interleave(per_class)
            grid = make_grid(self.sample(labels, self.seed, steps=self.cfg.grid_steps), nrow=per_class)
            self.samples_dir.mkdir(parents=True, exist_ok=True)
            save_image(grid, self.samples_dir / RunFolder.EPOCH_SAMPLES.format(epoch=self.current_epoch))
            save_image(grid, self.samples_dir / RunFolder.LATEST_SAMPLES)
