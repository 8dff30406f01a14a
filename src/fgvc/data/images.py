"""A labelled list of images (files on disk or pixels in memory) and the torch Dataset over it."""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from fgvc.errors import DataError, ImageTooLargeError

UNLABELLED = -1
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB image, with high-bit-depth grey images scaled to 8 bit by their range instead of clipped
    (PIL's own ``convert`` saturates a 16-bit image to white).

    16-bit: value / 257 (0..65535 -> 0..255). 32-bit integer: the same when its values fit 16 bit,
    as they are when they fit 8 bit, else scaled from its own min..max. Float: x 255 when in [0, 1],
    else min..max. 16-bit RGB PNGs PIL already reads as their high bytes."""
    if image.mode not in HIGH_BIT_MODES:
        return image.convert("RGB")
    pixels = np.asarray(image, dtype=np.float64)
    low, high = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
    if image.mode.startswith("I;16") or (image.mode == "I" and 0 <= low and 255 < high <= 65535):
        pixels = pixels / 257.0
    elif image.mode == "F" and 0 <= low and high <= 1:
        pixels = pixels * 255.0
    elif not (0 <= low and high <= 255):
        pixels = (pixels - low) / (high - low) * 255.0 if high > low else np.zeros_like(pixels)
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), "L").convert("RGB")


def image_notes(data: bytes, path_name: str) -> list[str]:
    """Odd but readable things about an image file (for ``data verify``): high bit depth, CMYK,
    grayscale, a palette with transparency, alpha, or content whose format disagrees with its name."""
    notes = []
    try:
        with Image.open(io.BytesIO(data)) as image:
            mode, fmt, info = image.mode, image.format, image.info
            rawmode = image.tile[0].args if image.tile and isinstance(image.tile[0].args, str) else ""
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return notes
    if mode in HIGH_BIT_MODES or ";16" in str(rawmode):
        notes.append(f"high bit depth ({mode if mode in HIGH_BIT_MODES else rawmode}), scaled to 8 bit")
    if mode == "CMYK":
        notes.append("CMYK, converted to RGB")
    if mode in ("L", "LA", "1") or mode.startswith("I"):
        notes.append("grayscale, repeated into 3 channels")
    if mode == "P" and "transparency" in info:
        notes.append("palette with transparency, flattened")
    elif mode in ("RGBA", "LA", "PA"):
        notes.append("alpha channel, dropped")
    suffix = Path(path_name).suffix.lower()
    expected = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                ".webp": "WEBP", ".ppm": "PPM", ".pgm": "PPM"}.get(suffix)
    if expected and fmt and fmt != expected:
        notes.append(f"{fmt} content named {suffix}")
    return notes


VERIFY_HINT = "Run `fgvc data verify CONFIG` to list every unreadable file."


def decode_image(data: bytes, name: str) -> Image.Image:
    """Decode image bytes fully (truncated files fail here, not later) into an RGB image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return to_rgb(image)
    except Image.DecompressionBombError:
        reason = too_many_pixels(data)
        raise ImageTooLargeError(f"cannot read image {name}: {reason}; shrink or remove it. {VERIFY_HINT}",
                                 reason) from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image {name}: {unreadable_reason(data, exc)}. {VERIFY_HINT}") from None


SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG": "PNG", b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF",
              b"MM\x00*": "TIFF", b"RIFF": "WEBP"}
_REPR = re.compile(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>")


def unreadable_reason(data: bytes, exc: BaseException) -> str:
    """Why PIL could not read ``data``, in words a user can act on (no Python reprs): an empty file, an
    HTML page or text saved under an image name, a damaged header, or PIL's own reason."""
    if not data:
        return "empty file (0 bytes)"
    size = f"{len(data):,} bytes"
    if isinstance(exc, UnidentifiedImageError):
        head = data[:256].lstrip().lower()
        if head.startswith((b"<!doctype html", b"<html")):
            return f"an HTML page, not an image ({size}; a failed download?)"
        kind = next((fmt for magic, fmt in SIGNATURES.items() if data.startswith(magic)), None)
        if kind:
            return f"a damaged {kind} file ({size}; its header cannot be parsed)"
        if all(32 <= c < 127 or c in b"\t\r\n" for c in data[:256]):
            return f"a text file, not an image ({size})"
        return f"not an image format PIL can read ({size})"
    reason = _REPR.sub("", str(exc)).strip() or type(exc).__name__
    return f"{reason[0].lower()}{reason[1:]}; the file has {size}"


def too_many_pixels(data: bytes) -> str:
    """Why PIL refused an image as a decompression bomb: the size its header declares, against PIL's limit."""
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    size = declared_size(data)
    shown = f"{size[0]} x {size[1]} pixels" if size else "too many pixels"
    return f"{shown}, over PIL's limit of {limit:,} pixels (a possible decompression bomb)"


def declared_size(data: bytes) -> Optional[tuple[int, int]]:
    """(width, height) from the image's header alone, nothing decoded and no pixel limit applied
    (PIL's format readers parse only the header when opened)."""
    Image.init()
    for factory, accept in list(Image.OPEN.values()):
        try:
            if accept is None or accept(data[:16]) is True:
                return tuple(factory(io.BytesIO(data), "").size)
        except Exception:  # a reader that cannot parse it: not this format
            continue
    return None


def read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot open image file {path}: {exc.strerror or exc}") from None


@dataclass
class ImageList:
    """Images with integer labels and class names; exactly one of ``paths`` / ``pixels`` is set.

    ``labels`` holds -1 for unlabelled images (e.g. a Kaggle test folder). ``boxes`` (x, y, w, h)
    crop each image when given. ``meta`` keeps per-image extras (ids, a second label, ...).
    """

    class_names: list[str]
    labels: np.ndarray
    paths: Optional[list[Path]] = None
    pixels: Optional[np.ndarray] = None
    boxes: Optional[np.ndarray] = None
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    name: str = "images"

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if (self.paths is None) == (self.pixels is None):
            raise ValueError("ImageList needs exactly one of paths or pixels")
        n = len(self.labels)
        sizes = {"paths": self.paths, "pixels": self.pixels, "boxes": self.boxes, **self.meta}
        for what, values in sizes.items():
            if values is not None and len(values) != n:
                raise ValueError(f"ImageList {self.name}: {what} has {len(values)} entries, labels {n}")
        labelled = self.labels[self.labels != UNLABELLED]
        if labelled.size and (labelled.min() < 0 or labelled.max() >= len(self.class_names)):
            raise DataError(
                f"{self.name}: label {int(labelled.max())} out of range for {len(self.class_names)} classes"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_labelled(self) -> bool:
        return bool(len(self)) and bool((self.labels != UNLABELLED).all())

    def key(self, index: int) -> str:
        """A name for the image: its file path, or ``name#index`` for in-memory pixels."""
        if self.paths is not None:
            return str(self.paths[index])
        return f"{self.name}#{int(self.meta['index'][index]) if 'index' in self.meta else index}"

    def fingerprints(self) -> list[str]:
        """One key per image that changes when the image does: path + size + mtime (files) or a hash of
        its pixels, with its box."""
        keys = []
        for index in range(len(self)):
            if self.paths is not None:
                stat = os.stat(self.paths[index])
                key = f"{self.paths[index]}|{stat.st_size}|{stat.st_mtime_ns}"
            else:
                key = hashlib.sha256(np.ascontiguousarray(self.pixels[index]).tobytes()).hexdigest()
            if self.boxes is not None:
                key += "|" + ",".join(f"{float(v):g}" for v in self.boxes[index])
            keys.append(key)
        return keys

    def content_bytes(self, index: int) -> bytes:
        """The image's raw content (file bytes or pixel bytes), e.g. for hashing."""
        if self.paths is not None:
            return read_bytes(self.paths[index])
        return np.ascontiguousarray(self.pixels[index]).tobytes()

    def image_from_bytes(self, index: int, data: bytes) -> Image.Image:
        """Decode ``content_bytes(index)`` into an RGB image, cropped to its box when there is one."""
        if self.paths is not None:
            image = decode_image(data, self.key(index))
        else:
            image = Image.fromarray(np.asarray(self.pixels[index])).convert("RGB")
        if self.boxes is not None:
            image = image.crop(self.crop_box(index))
        return image

    def crop_box(self, index: int) -> tuple[int, int, int, int]:
        """The image's bounding box (x, y, w, h) as the (left, top, right, bottom) pixels its crop keeps."""
        x, y, w, h = (float(v) for v in self.boxes[index])
        return int(x), int(y), int(round(x + w)), int(round(y + h))

    def load(self, index: int) -> Image.Image:
        """The image as RGB (cropped to its box when there is one)."""
        return self.image_from_bytes(index, self.content_bytes(index))

    def subset(self, indices: Sequence[int], name: Optional[str] = None) -> "ImageList":
        """The images at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        return ImageList(
            class_names=self.class_names,
            labels=self.labels[idx],
            paths=[self.paths[i] for i in idx] if self.paths is not None else None,
            pixels=self.pixels[idx] if self.pixels is not None else None,
            boxes=self.boxes[idx] if self.boxes is not None else None,
            meta={k: np.asarray(v)[idx] for k, v in self.meta.items()},
            name=name or self.name,
        )

    def class_counts(self) -> np.ndarray:
        labelled = self.labels[self.labels != UNLABELLED]
        return np.bincount(labelled, minlength=len(self.class_names))


def concat_images(parts: Sequence[ImageList], name: str) -> ImageList:
    """Several ImageLists of the same classes and kind (files or pixels) as one."""
    first = parts[0]
    keys = set.intersection(*(set(p.meta) for p in parts))
    return ImageList(
        class_names=first.class_names,
        labels=np.concatenate([p.labels for p in parts]),
        paths=[path for p in parts for path in p.paths] if first.paths is not None else None,
        pixels=np.concatenate([p.pixels for p in parts]) if first.pixels is not None else None,
        boxes=np.concatenate([p.boxes for p in parts]) if first.boxes is not None else None,
        meta={k: np.concatenate([np.asarray(p.meta[k]) for p in parts]) for k in keys},
        name=name,
    )


class ImageDataset(Dataset):
    """torch Dataset of (transformed image, label) over an ImageList."""

    def __init__(self, images: ImageList, transform: Optional[Callable] = None):
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images.load(index)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.images.labels[index])


def list_image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, in natural order (2.jpg before 10.jpg)."""
    files = [p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=natural_key)


def _overlaps(a: str, b: str) -> bool:
    """Whether one of two real folder paths contains the other."""
    return os.path.commonpath([a, b]) in (a, b)


def follows(link: str, walked: list[str], follow_links: bool) -> bool:
    """Whether to descend into the folder link ``link``: only when asked, and never into a folder that
    overlaps one walked already (``red/up -> ..`` would list the tree again, or forever). A followed
    link's target is added to ``walked``."""
    target = os.path.realpath(link)
    if not follow_links or any(_overlaps(target, done) for done in walked):
        return False
    walked.append(target)
    return True


def walk_image_files(top: Path, walked: list[str], follow_links: bool = False,
                     skipped: Optional[list[str]] = None) -> list[Path]:
    """Image files anywhere below ``top``, in torchvision's ImageFolder order (folders by path, files by
    name). Folder links are followed as :func:`follows` says; those not followed are added to ``skipped``
    as ``"link -> target"``. ``walked``: the real folders walked so far (the data set's root at first)."""
    found = []
    for folder, dirs, files in os.walk(top, followlinks=True):  # links are pruned here, not by os.walk
        for name in list(dirs):
            path = os.path.join(folder, name)
            if os.path.islink(path) and not follows(path, walked, follow_links):
                dirs.remove(name)
                if skipped is not None:
                    skipped.append(f"{path} -> {os.readlink(path)}")
        found.append((folder, sorted(f for f in files if f.lower().endswith(IMAGE_EXTENSIONS))))
    return [Path(folder, name) for folder, names in sorted(found) for name in names]


def natural_key(path: Path) -> tuple:
    stem = path.stem
    return (0, int(stem), path.name) if stem.isdigit() else (1, 0, path.name)
