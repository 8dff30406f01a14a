"""A class-conditional DCGAN with a projection discriminator (Miyato & Koyama 2018), trained with Lightning.

Generator: [z, embed(y)] -> 4x4 -> (upsample, conv, BN, ReLU) x k -> conv -> tanh at 32-128 px.
Discriminator: (conv stride 2, LeakyReLU) x k -> sum over space -> linear + <embed(y), h>;
spectral norm optional. Hinge loss. Labels come from the condition, so every sample is labelled.
With a few hundred images per class the discriminator memorises the real set and the generator
collapses; DiffAugment (Zhao et al. 2020, ``gan.diff_augment``) shows the discriminator every real
and generated image through the same random, differentiable colour / translation / cutout.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm
from torchvision.utils import make_grid, save_image

from fgvc.config import GanConfig
from fgvc.runfolder import RunFolder


def _stages(image_size: int) -> int:
    stages = int(math.log2(image_size // 4))
    if 4 * 2 ** stages != image_size or not 32 <= image_size <= 128:
        raise ValueError(f"gan.image_size must be 32, 64 or 128 (got {image_size})")
    return stages


def diff_augment(images: torch.Tensor, translation: float = 0.125, cutout: float = 0.5) -> torch.Tensor:
    """DiffAugment's colour, translation and cutout, drawn per image, differentiable (images in [-1, 1])."""
    n, device = len(images), images.device
    rand = lambda *shape: torch.rand(n, *shape, device=device, dtype=images.dtype)  # noqa: E731
    x = images + (rand(1, 1, 1) - 0.5)  # brightness
    if x.shape[1] > 1:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (rand(1, 1, 1) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (rand(1, 1, 1) + 0.5) + mean  # contrast
    # translation by up to `translation` of the size, zeros shifted in (an affine grid, so gradients flow)
    theta = torch.zeros(n, 2, 3, device=device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = (rand(2) * 2 - 1) * 2 * translation
    x = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), mode="nearest",
                      padding_mode="zeros", align_corners=False)
    # cutout: one square of `cutout` x the size per image set to zero
    h, w = x.shape[2:]
    ch, cw = int(h * cutout + 0.5), int(w * cutout + 0.5)
    top = (rand() * (h + 1 - ch)).long().view(n, 1, 1)
    left = (rand() * (w + 1 - cw)).long().view(n, 1, 1)
    rows, cols = torch.arange(h, device=device).view(1, h, 1), torch.arange(w, device=device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


class Generator(nn.Module):
    def __init__(self, cfg: GanConfig, num_classes: int):
        super().__init__()
        self.z_dim = cfg.z_dim
        width = cfg.width * 2 ** (_stages(cfg.image_size) - 1)
        self.embed = nn.Embedding(num_classes, cfg.z_dim)
        self.project = nn.Linear(2 * cfg.z_dim, 4 * 4 * width)
        self.start_width = width
        blocks = []
        for _ in range(_stages(cfg.image_size)):
            out = max(cfg.width, width // 2)
            blocks += [nn.Upsample(scale_factor=2), nn.Conv2d(width, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(True)]
            width = out
        self.blocks = nn.Sequential(nn.BatchNorm2d(self.start_width), nn.ReLU(True), *blocks)
        self.to_rgb = nn.Conv2d(width, cfg.channels, 3, padding=1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(labels)], dim=1)).view(len(z), self.start_width, 4, 4)
        return torch.tanh(self.to_rgb(self.blocks(h)))


class ProjectionDiscriminator(nn.Module):
    def __init__(self, cfg: GanConfig, num_classes: int):
        super().__init__()
        norm = spectral_norm if cfg.spectral_norm else (lambda m: m)
        layers, width, channels = [], cfg.width, cfg.channels
        for _ in range(_stages(cfg.image_size)):
            layers += [norm(nn.Conv2d(channels, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, True)]
            channels, width = width, width * 2
        self.features = nn.Sequential(*layers)
        self.linear = norm(nn.Linear(channels, 1))
        self.embed = norm(nn.Embedding(num_classes, channels))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.features(images).sum(dim=(2, 3))
        return self.linear(h).squeeze(1) + (self.embed(labels) * h).sum(1)  # the projection term


class ConditionalGAN(L.LightningModule):
    """Hinge-loss GAN training: one discriminator step then one generator step per batch."""

    def __init__(self, cfg: GanConfig, num_classes: int, samples_dir: Path | None = None, seed: int = 0):
        super().__init__()
        self.save_hyperparameters({"gan": cfg.model_dump(mode="json"), "num_classes": num_classes})
        self.cfg, self.num_classes, self.samples_dir = cfg, num_classes, samples_dir
        self.automatic_optimization = False
        self.generator = Generator(cfg, num_classes)
        self.discriminator = ProjectionDiscriminator(cfg, num_classes)
        generator = torch.Generator().manual_seed(seed)
        per_class = max(1, 64 // num_classes)
        self.register_buffer("fixed_z", torch.randn(per_class * num_classes, cfg.z_dim, generator=generator))
        self.register_buffer("fixed_y", torch.arange(num_classes).repeat_interleave(per_class))

    def training_step(self, batch, batch_idx):
        real, labels = batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(len(real), self.cfg.z_dim, device=self.device)
        fake = self.generator(z, labels)
        seen = diff_augment if self.cfg.diff_augment else (lambda images: images)  # what the discriminator sees
        d_loss = (F.relu(1 - self.discriminator(seen(real), labels)).mean()
                  + F.relu(1 + self.discriminator(seen(fake.detach()), labels)).mean())
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        g_loss = -self.discriminator(seen(fake), labels).mean()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        if not (torch.isfinite(d_loss) and torch.isfinite(g_loss)):
            from fgvc.errors import NonFiniteLossError

            raise NonFiniteLossError(f"GAN loss is not finite at epoch {self.current_epoch}, batch {batch_idx}")
        self.log_dict({"gan/d_loss": d_loss, "gan/g_loss": g_loss}, on_epoch=True, on_step=False, prog_bar=True)

    def configure_optimizers(self):
        betas = tuple(self.cfg.betas)
        return (torch.optim.Adam(self.generator.parameters(), lr=self.cfg.lr_g, betas=betas),
                torch.optim.Adam(self.discriminator.parameters(), lr=self.cfg.lr_d, betas=betas))

    def on_train_epoch_end(self) -> None:
        if self.samples_dir is not None and self.trainer.is_global_zero:
            self.samples_dir.mkdir(parents=True, exist_ok=True)
            grid = self.progress_grid()
            save_image(grid, self.samples_dir / RunFolder.EPOCH_SAMPLES.format(epoch=self.current_epoch))
            save_image(grid, self.samples_dir / RunFolder.LATEST_SAMPLES)

    @torch.no_grad()
    def progress_grid(self) -> torch.Tensor:
        """The fixed-noise samples, one row per class, in [0, 1]."""
        self.generator.eval()
        images = self.generator(self.fixed_z, self.fixed_y)
        self.generator.train()
        return make_grid(images * 0.5 + 0.5, nrow=len(self.fixed_y) // self.num_classes)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, seed: int) -> torch.Tensor:
        """Images in [0, 1] for ``labels``, reproducible for a seed."""
        self.generator.eval()
        generator = torch.Generator().manual_seed(seed)
        z = torch.randn(len(labels), self.cfg.z_dim, generator=generator).to(self.device)
        return self.generator(z, labels.to(self.device)) * 0.5 + 0.5
