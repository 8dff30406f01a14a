"""Write generated images as a labelled data set: DIR/<class name>/<file>.png plus manifest.csv.

manifest.csv columns: file (relative to DIR), label (class name), generator, checkpoint, seed,
guidance, confidence. Any generator (GAN, diffusion, text-to-image) writes through here, and
``data.synthetic`` reads it back like any other data set.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from PIL import Image

from fgvc.groupfolder import SyntheticFolder


@dataclass
class SyntheticImage:
    image: Image.Image
    label: str
    generator: str
    checkpoint: str = ""
    seed: int = 0
    guidance: Optional[float] = None
    confidence: Optional[float] = None
    extra: dict = field(default_factory=dict)


def safe_folder_name(class_name: str) -> str:
    """A class name usable as a folder name (slashes and odd characters replaced)."""
    return re.sub(r"[^A-Za-z0-9._ -]", "_", class_name).strip() or "_"


def write_synthetic(images: Iterable[SyntheticImage], out: Path) -> Path:
    """Save images under OUT/<class>/ and append their rows to OUT/manifest.csv; returns the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = SyntheticFolder(out).manifest_file
    new = not manifest.exists()
    counters: dict[str, int] = {}
    with manifest.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(SyntheticFolder.MANIFEST_COLUMNS)
        for item in images:
            folder = out / safe_folder_name(item.label)
            folder.mkdir(exist_ok=True)
            n = counters.setdefault(item.label, len(list(folder.glob("*.png"))))
            counters[item.label] = n + 1
            relative = Path(folder.name) / f"{item.generator}_{item.seed}_{n:05d}.png"
            item.image.convert("RGB").save(out / relative)
            writer.writerow([relative.as_posix(), item.label, item.generator, item.checkpoint, item.seed,
                             "" if item.guidance is None else item.guidance,
                             "" if item.confidence is None else f"{item.confidence:.6f}"])
    return manifest
