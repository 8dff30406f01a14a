"""``fgvc explain``: overlay PNGs of what a trained run's model looks at, and a gallery for the report."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from fgvc.data.images import IMAGE_EXTENSIONS, decode_image, read_bytes  # noqa: E402
from fgvc.errors import FgvcError  # noqa: E402
from fgvc.evaluate.runs import TrainedRun, load_trained  # noqa: E402
from fgvc.explain.attention import attention_rollout, last_layer_attention  # noqa: E402
from fgvc.explain.cam import METHODS as CAM_METHODS  # noqa: E402
from fgvc.explain.cam import class_activation_maps  # noqa: E402

METHODS = (*CAM_METHODS, "rollout", "attention")


@dataclass
class Explanation:
    image: str
    overlay: Path
    predicted: str
    probability: float
    true: Optional[str]


def _collect(paths: Sequence[Path]) -> list[Path]:
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            files.append(path)
        else:
            raise FgvcError(f"image not found: {path}")
    if not files:
        raise FgvcError(f"no images in {[str(p) for p in paths]}")
    return files


def _denormalize(batch: torch.Tensor, run: TrainedRun) -> np.ndarray:
    mean = torch.tensor(run.norm.mean).view(1, 3, 1, 1)
    std = torch.tensor(run.norm.std).view(1, 3, 1, 1)
    return (batch * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()


def maps_for(run: TrainedRun, batch: torch.Tensor, method: str) -> np.ndarray:
    if method in CAM_METHODS:
        return class_activation_maps(run.model, batch, method)
    if method == "rollout":
        return attention_rollout(run.model, batch)
    if method == "attention":
        return last_layer_attention(run.model, batch)
    raise FgvcError(f"unknown method {method!r}; choose from {list(METHODS)}")


def explain_images(run_dir: Path, images: Sequence[Path], method: str = "gradcam", out: Optional[Path] = None,
                   true_labels: Optional[dict[str, int]] = None) -> list[Explanation]:
    """One overlay PNG per image (at the model's input size), named <stem>_<method>.png, plus
    explanations.csv with the predicted class, its probability and the true class when known (from
    ``true_labels`` or a parent folder named like a class)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    run = load_trained(Path(run_dir))
    out = Path(out or Path(run_dir) / "explain")
    out.mkdir(parents=True, exist_ok=True)
    transform = run.eval_transform
    files = _collect(images)
    results = []
    for start in range(0, len(files), 16):
        chunk = files[start:start + 16]
        batch = torch.stack([transform(decode_image(read_bytes(f), str(f))) for f in chunk])
        with torch.no_grad():
            probs = run.model(batch).softmax(-1)
        maps = maps_for(run, batch, method)
        pictures = _denormalize(batch, run)
        for file, picture, heat, p in zip(chunk, pictures, maps, probs):
            overlay = show_cam_on_image(picture.astype(np.float32), heat, use_rgb=True)
            path = out / f"{file.stem}_{method}.png"
            Image.fromarray(overlay).save(path)
            label = (true_labels or {}).get(str(file))
            if label is None and file.parent.name in run.class_names:
                label = run.class_names.index(file.parent.name)
            results.append(Explanation(str(file), path, run.class_names[int(p.argmax())], float(p.max()),
                                       run.class_names[label] if label is not None else None))
    with (out / "explanations.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "overlay", "predicted", "probability", "true"])
        for e in results:
            writer.writerow([e.image, e.overlay.name, e.predicted, f"{e.probability:.4f}", e.true or ""])
    return results


def gallery(run_dir: Path, method: Optional[str] = None, per_kind: int = 4) -> Path:
    """explain/gallery.png: explanations of test images the model got right and wrong (for the report)."""
    run_dir = Path(run_dir)
    predictions = run_dir / "predictions_test.csv"
    if not predictions.is_file():
        raise FgvcError(f"{run_dir} has no predictions_test.csv; train or `fgvc eval` it first")
    with predictions.open() as handle:
        rows = list(csv.DictReader(handle))
    right = [r for r in rows if r["target"] == r["predicted"]][:per_kind]
    wrong = [r for r in rows if r["target"] != r["predicted"]][:per_kind]
    chosen = [r for r in right + wrong if Path(r["image"]).is_file()]
    if not chosen:
        raise FgvcError("no test images on disk to explain (in-memory data sets have no files)")
    run = load_trained(run_dir)
    method = method or ("attention" if hasattr(run.model, "blocks") else "gradcam")
    found = explain_images(run_dir, [Path(r["image"]) for r in chosen], method, run_dir / "explain",
                           true_labels={r["image"]: int(r["target"]) for r in chosen})
    columns = min(4, len(found))
    lines = math.ceil(len(found) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(2.6 * columns, 2.9 * lines), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, e in zip(axes.ravel(), found):
        axis.imshow(Image.open(e.overlay))
        mark = "right" if e.true == e.predicted else "wrong"
        axis.set_title(f"[{mark}] true {e.true}\npred {e.predicted} ({e.probability:.2f})", fontsize=7)
    figure.suptitle(f"{method}", fontsize=9)
    figure.tight_layout()
    path = run_dir / "explain" / "gallery.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
