"""Data loaders for training: a LightningDataModule whose randomness depends only on (seed, epoch, index).

Shuffling is drawn from (seed, epoch) and each sample's augmentation from (seed, epoch, index), so a
run resumed from a checkpoint sees exactly the batches and augmentations of the uninterrupted run,
whatever the number of workers. Under DDP the sampler shards the same permutation across ranks.
"""

from __future__ import annotations

import math
import os
import random
import signal
from typing import Callable, Optional

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from fgvc.data.images import ImageList
from fgvc.data.splits import DataSplits


def mix_seed(*parts: int) -> int:
    """A 32-bit seed from integers (a simple, stable hash)."""
    value = 0x9E3779B9
    for part in parts:
        value = (value * 1_000_003) ^ (int(part) & 0xFFFFFFFF)
        value &= 0xFFFFFFFFFFFF
    return value & 0x7FFFFFFF


def seed_everything_quietly(seed: int, devices: bool = False) -> None:
    """Seed python, numpy and torch's CPU generator (``devices``: also the accelerators' generators).

    Per sample only the CPU generator matters and ``torch.manual_seed`` costs ~100x more, as it also
    walks every accelerator backend.
    """
    random.seed(seed)
    np.random.seed(seed)
    if devices:
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


class EpochSampler(Sampler):
    """Yields (epoch, index) pairs: a (seed, epoch) permutation or the natural order, sharded by rank."""

    def __init__(self, size: int, seed: int, shuffle: bool, shard: bool = True):
        self.size, self.seed, self.shuffle, self.shard = size, seed, shuffle, shard
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at each epoch start
        self.epoch = epoch

    def _world(self) -> tuple[int, int]:
        """(world size, rank) of a data-parallel run; a pipeline's ranks all see the same batches."""
        if self.shard and dist.is_available() and dist.is_initialized():
            return dist.get_world_size(), dist.get_rank()
        return 1, 0

    def __len__(self) -> int:
        world, _ = self._world()
        return math.ceil(self.size / world)

    def __iter__(self):
        if self.shuffle:
            generator = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        world, rank = self._world()
        if world > 1:
            order += order[: len(self) * world - len(order)]  # pad so every rank gets as many
            order = order[rank::world]
        return iter((self.epoch, index) for index in order)


class SeededImageDataset(Dataset):
    """(image, label) pairs; the augmentation of sample i in epoch e is seeded by (seed, e, i)."""

    def __init__(self, images: ImageList, transform: Optional[Callable], seed: int):
        self.images, self.transform, self.seed = images, transform, seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        seed_everything_quietly(mix_seed(self.seed, epoch, index))
        return self.sample(index), int(self.images.labels[index])

    def sample(self, index: int):
        """What the loader hands over for image ``index`` (the global RNGs are already seeded)."""
        return self.transform(self.images.load(index))


class RunWorkerInit:
    """A run's data-loader worker: seeded as Lightning seeds one (``seed_everything(workers=True)``), and
    deaf to the signals a terminal or a scheduler sends the whole process group (Ctrl-C, ``kill --
    -PGID``, a job's cancel), which would otherwise reach the run as a worker killed mid-batch, or as the
    run's own stop handler raising in a forked copy. The run's process stops the run and shuts its
    workers down; a SIGTERM still ends a worker, quietly (exit 0), as torch's handler ends one its
    parent terminates."""

    def __init__(self, rank: int = 0):
        self.rank = rank

    def __call__(self, worker_id: int) -> None:
        if int(os.environ.get("PL_SEED_WORKERS", 0)):  # what Lightning adds when a loader has no init
            from lightning.fabric.utilities.seed import pl_worker_init_function

            pl_worker_init_function(worker_id, rank=self.rank)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _leave_quietly)


def _leave_quietly(signum, frame) -> None:
    os._exit(0)


class FgvcDataModule(L.LightningDataModule):
    """Train / val / test loaders over :class:`DataSplits` with the given transforms.

    ``start_epoch``: the epoch a resumed fit starts with. Lightning creates the first train iterator
    before it calls the sampler's ``set_epoch``, and a loader with worker processes prefetches its
    first batches at creation, so without it a resumed run would draw its first epoch in epoch 0's
    order (seen only with ``num_workers > 0``).
    """

    def __init__(self, splits: DataSplits, train_transform: Callable, eval_transform: Callable, batch_size: int,
                 eval_batch_size: int, num_workers: int, seed: int, drop_last: bool = False, start_epoch: int = 0,
                 dataset_factory: Optional[Callable[[ImageList, bool, int], Dataset]] = None,
                 collate_fn: Optional[Callable] = None):
        """``dataset_factory(images, train, seed)`` and ``collate_fn`` replace the (image, label) datasets
        and the default collation (e.g. data.jpeg_decode: device hands over undecoded samples)."""
        super().__init__()
        self.dataset_factory, self.collate_fn = dataset_factory, collate_fn
        self.start_epoch = start_epoch
        self.splits = splits
        self.train_transform, self.eval_transform = train_transform, eval_transform
        self.batch_size = batch_size  # the Tuner's batch-size search changes this attribute
        self.eval_batch_size = eval_batch_size
        self.num_workers, self.seed, self.drop_last = num_workers, seed, drop_last

    def _loader(self, images: ImageList, train: bool, batch_size: int) -> DataLoader:
        if self.dataset_factory is not None:
            dataset = self.dataset_factory(images, train, self.seed)
        else:
            dataset = SeededImageDataset(images, self.train_transform if train else self.eval_transform, self.seed)
        sampler = EpochSampler(len(images), self.seed, shuffle=train)
        if train:
            sampler.set_epoch(self.start_epoch)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            drop_last=train and self.drop_last and len(images) > batch_size,
            collate_fn=self.collate_fn,
            worker_init_fn=RunWorkerInit(self.trainer.global_rank if self.trainer is not None else 0)
            if self.num_workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.splits.train, True, self.batch_size)

    def val_dataloader(self):
        if self.splits.val is None or not len(self.splits.val):
            return []
        return self._loader(self.splits.val, False, self.eval_batch_size)
