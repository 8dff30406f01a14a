"""``fgvc gan|diffusion train`` and ``sample``: one config -> a generator run folder -> labelled images.

RUN_DIR/ config.yaml, classes.json, generator.json (gan or diffusion), history.csv,
checkpoints/last.ckpt, samples/epoch_NNN.png (the progress grid, one row per class), samples/latest.png.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import lightning as L
import torch
from torchvision import transforms as T

from fgvc.config import ExperimentConfig, load_config
from fgvc.data import load_data
from fgvc.data.datamodule import EpochSampler, SeededImageDataset
from fgvc.errors import FgvcError
from fgvc.generate.gan import ConditionalGAN
from fgvc.generate.writer import SyntheticImage, write_synthetic
from fgvc.runfolder import RunFolder
from fgvc.train.callbacks import EpochReseed, EpochSummary
from fgvc.train.engines.lightning import lightning_trainer
from fgvc.train.quiet import quiet_lightning
from fgvc.train.run import recorded_run
from fgvc.train.stopping import StopOnSignal, stop_on_signals
from fgvc.trust import checkpoint_start_epoch, loads_weights_only, read_checkpoint


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
                    progress: bool = True, callbacks: Sequence[L.Callback] = ()) -> Path:
    """Train a class-conditional generator (``gan`` or ``diffusion``) on the real training split
    (``callbacks``: more Lightning callbacks)."""
    quiet_lightning()
    folder = RunFolder(run_dir) if run_dir else None
    start_epoch = 0
    if resume:
        folder = folder.require()
        if not folder.last_checkpoint.is_file():
            raise FgvcError(f"cannot resume {folder.path}: no {folder.last_checkpoint.relative_to(folder.path)}")
        start_epoch = checkpoint_start_epoch(read_checkpoint(folder.last_checkpoint, "start the run again"))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    splits = load_data(cfg.data.model_copy(update={"synthetic": None}))  # a GAN learns from real images only
    dataset = SeededImageDataset(splits.train, generator_transform(cfg, kind), cfg.seed)
    sampler = EpochSampler(len(dataset), cfg.seed, shuffle=True)
    sampler.set_epoch(start_epoch)  # see FgvcDataModule: a resumed fit's first iterator is made before set_epoch
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.train.batch_size, drop_last=len(dataset) > cfg.train.batch_size,
                                         sampler=sampler, num_workers=cfg.data.num_workers,
                                         persistent_workers=cfg.data.num_workers > 0)
    folder = folder or RunFolder.claim(cfg.run_dir)
    with stop_on_signals() as stop_request, recorded_run(cfg, folder, splits.class_names, stop_request, header=not resume,
                                                         resume_command=f"fgvc {kind} train --resume {folder.path}"):
        if not resume:
            folder.generator_file.write_text(json.dumps({"kind": kind}))
        module = _module(kind, cfg, splits.num_classes, folder.samples_dir)
        # last.ckpt after every epoch (save_last with save_top_k=0 would write it only when training ends)
        every = [EpochReseed(cfg.seed), EpochSummary(folder.history_file), StopOnSignal(stop_request), *callbacks,
                 L.pytorch.callbacks.ModelCheckpoint(dirpath=folder.checkpoints, filename=RunFolder.LAST, monitor=None,
                                                     save_top_k=1, enable_version_counter=False)]
        trainer = lightning_trainer(cfg, folder.path, every, progress, devices=1, logger=False)
        trainer.fit(module, train_dataloaders=loader, ckpt_path=str(folder.last_checkpoint) if resume else None,
                    weights_only=loads_weights_only())
    return folder.path


def load_generator(run_dir: Path):
    """(module, class names, checkpoint path, kind) of a generator run folder."""
    folder = RunFolder(run_dir)
    if not folder.generator_file.is_file():
        raise FgvcError(f"{run_dir} is not a generator run (no generator.json); train one with `fgvc gan train`")
    kind = json.loads(folder.generator_file.read_text())["kind"]
    cfg = load_config(folder.config_file)
    classes = folder.class_names()
    checkpoint = folder.last_checkpoint
    if not checkpoint.is_file():
        raise FgvcError(f"{run_dir}: no {checkpoint.relative_to(folder.path)}; train it with `fgvc {kind} train`")
    module = _module(kind, cfg, len(classes))
    module.load_state_dict(read_checkpoint(checkpoint, f"train the generator again with `fgvc {kind} train`")["state_dict"])
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
