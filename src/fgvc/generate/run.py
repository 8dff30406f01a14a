"""``fgvc gan|diffusion train`` and ``sample``: one config -> a generator run folder -> labelled images.

RUN_DIR/ config.yaml, classes.json, generator.json (gan or diffusion), history.csv,
checkpoints/last.ckpt, samples/epoch_NNN.png (the progress grid, one row per class), samples/latest.png.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import lightning as L
import torch
from torchvision import transforms as T

from fgvc.config import ExperimentConfig, load_config
from fgvc.data import load_data
from fgvc.data.datamodule import EpochSampler, SeededImageDataset
from fgvc.errors import FgvcError
from fgvc.generate.gan import ConditionalGAN
from fgvc.generate.writer import SyntheticImage, write_synthetic
from fgvc.train.callbacks import EpochReseed, EpochSummary
from fgvc.train.run import new_run_dir, quiet_lightning


KINDS = ("gan", "diffusion")


def _settings(cfg: ExperimentConfig, kind: str):
    return cfg.gan if kind == "gan" else cfg.diffusion


def _module(kind: str, cfg: ExperimentConfig, num_classes: int, samples_dir: Optional[Path] = None):
    if kind == "gan":
        return ConditionalGAN(cfg.gan, num_classes, samples_dir, cfg.seed)
    from fgvc.generate.diffusion import ConditionalDiffusion

    return ConditionalDiffusion(cfg.diffusion, num_classes, samples_dir, cfg.seed)


def generator_transform(cfg: ExperimentConfig, kind: str = "gan"):
    """Real images resized and centre-cropped to the generator's size, scaled to [-1, 1]."""
    settings = _settings(cfg, kind)
    size = settings.image_size
    steps = [T.Resize(size), T.CenterCrop(size)]
    if settings.channels == 1:
        steps.append(T.Grayscale(1))
    if cfg.data.transforms.hflip:
        steps.append(T.RandomHorizontalFlip(cfg.data.transforms.hflip))
    return T.Compose(steps + [T.ToTensor(), T.Normalize([0.5] * settings.channels, [0.5] * settings.channels)])


def train_generator(cfg: ExperimentConfig, kind: str = "gan", run_dir: Optional[Path] = None, resume: bool = False,
                    progress: bool = True) -> Path:
    """Train a class-conditional generator (``gan`` or ``diffusion``) on the real training split."""
    quiet_lightning()
    run_dir = Path(run_dir) if run_dir else new_run_dir(cfg)
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume and not last.is_file():
        raise FgvcError(f"cannot resume {run_dir}: no checkpoints/last.ckpt")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    splits = load_data(cfg.data.model_copy(update={"synthetic": None}))  # a GAN learns from real images only
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(cfg.to_yaml())
    (run_dir / "classes.json").write_text(json.dumps(splits.class_names, indent=1))
    (run_dir / "generator.json").write_text(json.dumps({"kind": kind}))
    dataset = SeededImageDataset(splits.train, generator_transform(cfg, kind), cfg.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.train.batch_size, drop_last=len(dataset) > cfg.train.batch_size,
                                         sampler=EpochSampler(len(dataset), cfg.seed, shuffle=True),
                                         num_workers=cfg.data.num_workers, persistent_workers=cfg.data.num_workers > 0)
    module = _module(kind, cfg, splits.num_classes, run_dir / "samples")
    accelerator = "gpu" if cfg.train.accelerator == "cuda" else cfg.train.accelerator
    trainer = L.Trainer(
        max_epochs=cfg.train.epochs, accelerator=accelerator, devices=1, precision=cfg.train.precision, logger=False,
        enable_model_summary=False, enable_progress_bar=progress, limit_train_batches=cfg.train.limit_train_batches,
        use_distributed_sampler=False, default_root_dir=run_dir,
        callbacks=[EpochReseed(cfg.seed), EpochSummary(run_dir / "history.csv"),
                   L.pytorch.callbacks.ModelCheckpoint(dirpath=run_dir / "checkpoints", save_top_k=0, save_last=True)],
    )
    trainer.fit(module, train_dataloaders=loader, ckpt_path=str(last) if resume else None)
    return run_dir


def load_generator(run_dir: Path):
    """(module, class names, checkpoint path, kind) of a generator run folder."""
    run_dir = Path(run_dir)
    info = run_dir / "generator.json"
    if not info.is_file():
        raise FgvcError(f"{run_dir} is not a generator run (no generator.json); train one with `fgvc gan train`")
    kind = json.loads(info.read_text())["kind"]
    cfg = load_config(run_dir / "config.yaml")
    classes = json.loads((run_dir / "classes.json").read_text())
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        raise FgvcError(f"{run_dir}: no checkpoints/last.ckpt; train it with `fgvc {kind} train`")
    module = _module(kind, cfg, len(classes))
    module.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"])
    return module.eval(), classes, checkpoint, kind


def sample_generator(run_dir: Path, per_class: int, out: Path, seed: int = 0, batch_size: int = 64,
                     steps: int = 50, guidance: float = 2.0) -> Path:
    """``per_class`` images of every class into OUT/<class>/ with manifest.csv; returns the manifest.
    ``steps`` and ``guidance`` apply to diffusion (DDIM steps, classifier-free guidance scale)."""
    from PIL import Image

    module, classes, checkpoint, kind = load_generator(run_dir)
    options = {"steps": steps, "guidance": guidance} if kind == "diffusion" else {}
    items = []
    for index, name in enumerate(classes):
        for start in range(0, per_class, batch_size):
            count = min(batch_size, per_class - start)
            labels = torch.full((count,), index, dtype=torch.long)
            images = module.sample(labels, seed=seed * 100_003 + index * 1_009 + start, **options)
            for offset, image in enumerate(images):
                array = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).squeeze(-1).cpu().numpy()
                items.append(SyntheticImage(Image.fromarray(array), name, kind, str(checkpoint),
                                            seed=seed * 100_003 + index * 1_009 + start + offset,
                                            guidance=guidance if kind == "diffusion" else None))
    return write_synthetic(items, out)
