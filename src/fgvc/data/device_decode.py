"""JPEG decoding where the model runs (``data.jpeg_decode: device``): on a GPU, nvJPEG through
``torchvision.io.decode_jpeg(device="cuda")``, which lifts the ceiling of a loader whose workers spend
their time in PIL's decoder (an H100 was seen decode-bound at about 800 images/s).

The workers no longer decode a JPEG: they read its bytes and its size from the header, and draw the
sample's crop, flips and turns exactly as the PIL pipeline would (same generators, same order, seeded
by (seed, epoch, index)), so a run keeps its determinism and resume. The batch is decoded, cropped,
resized and flipped on the device (``on_before_batch_transfer``), then normalised as every uint8 batch
is. Files that are not plain RGB or grey JPEGs (PNG, CMYK, pixels in memory) are decoded by PIL in the
workers and take the same device path from there. Only crops, flips and 90-degree turns run on the
device; policies (RandAugment, TrivialAugment, colour jitter) need the workers' decoder.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from timm.data.transforms import RandomResizedCropAndInterpolation
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from fgvc.config import TransformConfig
from fgvc.data.datamodule import SeededImageDataset
from fgvc.data.images import ImageList
from fgvc.errors import DataError

JPEG_MAGIC = b"\xff\xd8\xff"
DEVICE_JPEG_MODES = ("RGB", "L")  # what nvJPEG turns into RGB; CMYK and the rest go through PIL
INTERPOLATIONS = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC,
                  "nearest": InterpolationMode.NEAREST}


@dataclass(frozen=True)
class Plan:
    """The geometry of one sample: ``box`` (top, left, height, width) cut first (CUB's bird box); then a
    training crop (top, left, height, width) resized to ``size``, or, for evaluation, the short side
    resized to ``resize`` and the centre ``size`` cut; then flips and ``turns`` x 90 degrees."""

    size: int
    interpolation: str
    crop: Optional[tuple[int, int, int, int]] = None
    resize: Optional[int] = None
    box: Optional[tuple[int, int, int, int]] = None
    hflip: bool = False
    vflip: bool = False
    turns: int = 0


class Planner:
    """Draws each sample's :class:`Plan` with the generators and in the order of the PIL pipeline that
    :func:`fgvc.data.transforms.build_transform` builds (timm's RandomResizedCropAndInterpolation, then
    torchvision's flips, then fgvc's RandomRot90), so both pipelines cut the same crops."""

    def __init__(self, tcfg: TransformConfig, interpolation: str, train: bool):
        self.tcfg, self.train = tcfg, train
        self.interpolation = interpolation
        if not train and interpolation == "random":
            self.interpolation = "bilinear"

    def plan(self, width: int, height: int, box: Optional[tuple[int, int, int, int]]) -> Plan:
        t = self.tcfg
        if not self.train:
            return Plan(t.crop, self.interpolation, resize=t.resize, box=box)
        if box is not None:
            height, width = box[2], box[3]
        crop = RandomResizedCropAndInterpolation.get_params(torch.empty((0, height, width)), t.scale, t.ratio)
        interpolation = self.interpolation
        if interpolation == "random":
            interpolation = random.choice(("bilinear", "bicubic"))
        hflip = bool(t.hflip > 0 and torch.rand(1) < t.hflip)
        vflip = bool(t.vflip > 0 and torch.rand(1) < t.vflip)
        turns = 0
        if t.rot90 > 0 and random.random() < t.rot90:
            turns = random.randrange(3) + 1
        return Plan(t.crop, interpolation, crop=tuple(int(v) for v in crop), box=box, hflip=hflip, vflip=vflip,
                    turns=turns)


@dataclass
class EncodedSample:
    """One sample as a worker hands it over: JPEG bytes (``jpeg`` True) or decoded CHW uint8 pixels."""

    data: torch.Tensor
    jpeg: bool
    plan: Plan
    name: str


class EncodedImageDataset(SeededImageDataset):
    """(EncodedSample, label) pairs; each sample's plan is seeded by (seed, epoch, index), as the
    PIL pipeline's augmentation is."""

    def __init__(self, images: ImageList, planner: Planner, seed: int):
        super().__init__(images, transform=None, seed=seed)
        self.planner = planner

    def sample(self, index: int) -> "EncodedSample":
        images, name = self.images, self.images.key(index)
        data = images.content_bytes(index)
        header = _jpeg_header(data) if images.paths is not None else None
        if header is not None:
            box = None
            if images.boxes is not None:  # as (top, left, height, width), the same pixels PIL's crop keeps
                left, top, right, bottom = images.crop_box(index)
                box = (top, left, bottom - top, right - left)
            sample = EncodedSample(torch.frombuffer(bytearray(data), dtype=torch.uint8), True,
                                   self.planner.plan(*header, box), name)
        else:  # decoded here by PIL (box already cut), then the same device path
            pixels = np.asarray(images.image_from_bytes(index, data), dtype=np.uint8)
            plan = self.planner.plan(pixels.shape[1], pixels.shape[0], None)
            sample = EncodedSample(torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous(), False, plan, name)
        return sample


def _jpeg_header(data: bytes) -> Optional[tuple[int, int]]:
    """(width, height) of a JPEG that the device can decode, None for anything else."""
    if not data.startswith(JPEG_MAGIC):
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size if image.format == "JPEG" and image.mode in DEVICE_JPEG_MODES else None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None  # PIL's decode in the worker then names the file (and a bomb's size)


class EncodedBatch:
    """A batch of EncodedSamples, kept on the CPU until :meth:`decode` (decode_jpeg wants CPU bytes)."""

    def __init__(self, samples: Sequence[EncodedSample]):
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def pin_memory(self) -> "EncodedBatch":  # the DataLoader's pin_memory calls this; bytes are small
        return self

    def decode(self, device: torch.device) -> torch.Tensor:
        """The batch as uint8 NCHW on ``device``: JPEGs decoded there, every image cut by its plan."""
        device = torch.device(device)
        jpegs = [i for i, s in enumerate(self.samples) if s.jpeg]
        decoded: dict[int, torch.Tensor] = {}
        if jpegs:
            for i, image in zip(jpegs, _decode_jpegs([self.samples[i] for i in jpegs], device)):
                decoded[i] = image
        images = []
        for i, sample in enumerate(self.samples):
            image = decoded[i] if i in decoded else sample.data.to(device, non_blocking=True)
            images.append(apply_plan(image, sample.plan))
        return torch.stack(images)


def _decode_jpegs(samples: Sequence[EncodedSample], device: torch.device) -> list[torch.Tensor]:
    """Decode in one call; when that fails, one by one to name the file that cannot be read."""
    data = [s.data for s in samples]
    try:
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        images = []
        for sample in samples:
            try:
                images.append(decode_jpeg(sample.data, mode=ImageReadMode.RGB, device=device))
            except RuntimeError as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "corrupt JPEG data"
                raise DataError(f"cannot read image {sample.name}: {reason}. Run `fgvc data verify CONFIG` "
                                "to list every unreadable file.") from None
        return images


def apply_plan(image: torch.Tensor, plan: Plan) -> torch.Tensor:
    """A CHW uint8 image cut, resized and turned as ``plan`` says (torchvision's tensor operations, with
    antialiasing, as PIL resizes)."""
    mode = INTERPOLATIONS[plan.interpolation]
    if plan.box is not None:
        image = F.crop(image, *plan.box)  # zero padding where a box leaves the image, as PIL's crop
    if plan.crop is not None:
        image = F.resized_crop(image, *plan.crop, [plan.size, plan.size], interpolation=mode, antialias=True)
    else:
        image = F.center_crop(F.resize(image, [plan.resize], interpolation=mode, antialias=True),
                              [plan.size, plan.size])
    if plan.hflip:
        image = image.flip(-1)
    if plan.vflip:
        image = image.flip(-2)
    if plan.turns:
        image = torch.rot90(image, plan.turns, dims=(-2, -1))  # counter-clockwise, as PIL's ROTATE_90
    return image.contiguous()


def collate_encoded(batch: Sequence[tuple[EncodedSample, int]]) -> tuple[EncodedBatch, torch.Tensor]:
    samples, labels = zip(*batch)
    return EncodedBatch(samples), torch.tensor(labels, dtype=torch.long)
