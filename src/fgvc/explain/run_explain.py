"""``fgvc explain``: overlay PNGs of what a trained run's model looks at, and a gallery for the report."""

from __future__ import annotations

import csv
import math
import shutil
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
from fgvc.explain.cam import class_activation_maps, is_vit  # noqa: E402
from fgvc.models.methods.base import backbone_of  # noqa: E402
from fgvc.models.layout import inference_layout, to_layout  # noqa: E402
from fgvc.progress import track  # noqa: E402
from fgvc.runfolder import Prediction, RunFolder  # noqa: E402

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


def choose_method(run: TrainedRun, method: Optional[str]) -> str:
    """``method`` checked against the run's architecture; None picks one: attention maps for a ViT,
    Grad-CAM for everything else (a CNN such as EfficientNet, whose ``.blocks`` are convolutions)."""
    if method is None:
        return "attention" if is_vit(backbone_of(run.model)) else "gradcam"
    if method not in METHODS:
        raise FgvcError(f"unknown method {method!r}; choose from {list(METHODS)}")
    if method in ("rollout", "attention") and not is_vit(backbone_of(run.model)):
        raise FgvcError(f"--method {method} needs a ViT; {run.cfg.model.name} is not one: use one of {list(CAM_METHODS)}")
    return method


def maps_for(run: TrainedRun, batch: torch.Tensor, method: str) -> np.ndarray:
    if method in CAM_METHODS:
        return class_activation_maps(run.model, batch, method)
    if method == "rollout":
        return attention_rollout(run.model, batch)
    if method == "attention":
        return last_layer_attention(run.model, batch)
    raise FgvcError(f"unknown method {method!r}; choose from {list(METHODS)}")


def explain_images(run_dir: Path, images: Sequence[Path], method: Optional[str] = None, out: Optional[Path] = None,
                   true_labels: Optional[dict[str, int]] = None, run: Optional[TrainedRun] = None) -> list[Explanation]:
    """One overlay PNG per image (at the model's input size), named <stem>_<method>.png, plus
    explanations.csv with the predicted class, its probability and the true class when known (from
    ``true_labels`` or a parent folder named like a class). ``method`` None: chosen by architecture.
    On failure no new (empty or partial) output folder is left behind."""
    run = run or load_trained(Path(run_dir))
    method = choose_method(run, method)
    files = _collect(images)
    out = Path(out or RunFolder(run_dir).explain_dir)
    created = not out.exists()
    try:
        return _explain(run, files, method, out, true_labels)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def explain_pictures(run: TrainedRun, pictures: Sequence[Image.Image], method: str
                     ) -> tuple[torch.Tensor, list[np.ndarray], list[np.ndarray]]:
    """For decoded RGB pictures: class probabilities (N x C), the model's view of each picture (its
    eval transform, as uint8 HxWx3) and the heat map blended over that view (uint8 HxWx3)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    batch = torch.stack([run.eval_transform(p) for p in pictures])
    with inference_layout(run.model) as nhwc:
        with torch.no_grad():
            probs = run.model(to_layout(batch, nhwc)).softmax(-1)
        maps = maps_for(run, to_layout(batch, nhwc), method)
    views = _denormalize(batch, run)
    overlays = [show_cam_on_image(v.astype(np.float32), heat, use_rgb=True) for v, heat in zip(views, maps)]
    return probs, [(v * 255).round().astype(np.uint8) for v in views], overlays


def _explain(run: TrainedRun, files: list[Path], method: str, out: Path,
             true_labels: Optional[dict[str, int]]) -> list[Explanation]:
    results, overlays = [], []
    for start in track(range(0, len(files), 16), f"explaining {len(files)} images ({method})"):
        chunk = files[start:start + 16]
        probs, _, chunk_overlays = explain_pictures(run, [decode_image(read_bytes(f), str(f)) for f in chunk], method)
        overlays += chunk_overlays
        for file, p in zip(chunk, probs):
            label = (true_labels or {}).get(str(file))
            if label is None and file.parent.name in run.class_names:
                label = run.class_names.index(file.parent.name)
            overlay_file = out / RunFolder.OVERLAY.format(image=file.stem, method=method)
            results.append(Explanation(str(file), overlay_file, run.class_names[int(p.argmax())],
                                       float(p.max()), run.class_names[label] if label is not None else None))
    out.mkdir(parents=True, exist_ok=True)  # only once every map is made
    for e, overlay in zip(results, overlays):
        Image.fromarray(overlay).save(e.overlay)
    with (out / RunFolder.EXPLANATIONS).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "overlay", "predicted", "probability", "true"])
        for e in results:
            writer.writerow([e.image, e.overlay.name, e.predicted, f"{e.probability:.4f}", e.true or ""])
    return results


def spread_over_classes(rows: Sequence[Prediction], count: int) -> list[Prediction]:
    """Up to ``count`` rows taken round-robin over their true classes (in class order), so a gallery
    shows many classes rather than the first rows of one."""
    by_class: dict[int, list[Prediction]] = {}
    for row in rows:
        by_class.setdefault(row.target, []).append(row)
    queues = [by_class[c] for c in sorted(by_class)]
    chosen: list[Prediction] = []
    depth = 0
    while len(chosen) < count and any(depth < len(q) for q in queues):
        chosen += [q[depth] for q in queues if depth < len(q)][: count - len(chosen)]
        depth += 1
    return chosen


def gallery(run_dir: Path, method: Optional[str] = None, per_kind: int = 4) -> Path:
    """explain/gallery.png: explanations of test images the model got right and wrong (for the report),
    spread over the classes. ``method`` None: chosen by architecture."""
    folder = RunFolder(run_dir)
    rows = [r for r in folder.predictions("test") if Path(r.image).is_file()]
    if not rows:
        raise FgvcError("no test images on disk to explain (in-memory data sets have no files)")
    chosen = (spread_over_classes([r for r in rows if r.right], per_kind)
              + spread_over_classes([r for r in rows if not r.right], per_kind))
    run = load_trained(folder.path)
    method = choose_method(run, method)
    found = explain_images(folder.path, [Path(r.image) for r in chosen], method, folder.explain_dir,
                           true_labels={r.image: r.target for r in chosen}, run=run)
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
    figure.savefig(folder.gallery_file, dpi=100)
    plt.close(figure)
    return folder.gallery_file
