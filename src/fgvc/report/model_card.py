"""The model card (README.md, Hugging Face model-card format) and timm's hub ``config.json`` of a run
folder, written when the run finishes. With the weights (``fgvc push`` adds them as model.safetensors)
the folder loads in plain timm: ``timm.create_model("hf-hub:USER/REPO")`` or ``"local-dir:PATH"``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from fgvc.config import ExperimentConfig, load_config
from fgvc.data.transforms import transforms_for
from fgvc.models.factory import fixed_input_size
from fgvc.models.strategies import describe_strategy
from fgvc.registry import ENGINES, SOURCES
from fgvc.runfolder import RunFolder

HEADLINE = ("top1", "f1_macro", "auroc_macro", "ece")


def loads_in_timm(cfg: ExperimentConfig) -> Optional[str]:
    """None when the run's network is a plain timm model (its own classifier), else why it is not."""
    m = cfg.model
    if not ENGINES.info(cfg.train.engine).get("timm_model", True):
        return f"train.engine {cfg.train.engine} builds its own network"
    if cfg.probe.clip_features:
        return "the probe's network is a CLIP image tower (probe.features: clip)"
    if cfg.method.name != "plain":
        return f"method.name {cfg.method.name} builds fgvc's own modules around the backbone"
    if m.source != "timm":
        return f"model.source is {m.source}"
    if m.head_init == "zero_shot":
        return "the CLIP tower sits in fgvc's zero-shot classifier (normalised embedding, text head)"
    if m.head_hidden or m.head_dropout or m.keep_pretrained_head:
        return "the head is fgvc's own (model.head_hidden / head_dropout / keep_pretrained_head)"
    if cfg.probe.head == "mlp" or cfg.probe.pooled_layers:
        return "the probe's head is fgvc's own (probe.head: mlp or pooled layers)"
    return None


def network_name(cfg: ExperimentConfig) -> str:
    """The network as a user would look it up: the config key the engine names it by (``model.name``
    unless the engine registered another ``model_key``), with the fine-grained method around it."""
    section, key = ENGINES.info(cfg.train.engine).get("model_key", "model.name").split(".")
    if cfg.probe.clip_features:  # the probe on the zero_shot section's CLIP tower
        section, key = "zero_shot", "model"
    name = str(getattr(getattr(cfg, section), key))
    return name if cfg.method.name == "plain" else f"{name} + {cfg.method.name}"


def timm_config(cfg: ExperimentConfig, class_names: list[str]) -> dict[str, Any]:
    """config.json in timm's hub layout (architecture, model_args, pretrained_cfg, label_names)."""
    t = cfg.data.transforms
    norm = transforms_for(cfg).norm
    built_for = fixed_input_size(cfg.model.name)  # a ViT is built at the crop it is fed (models.factory)
    img_size = cfg.model.img_size or (t.crop if built_for and built_for != t.crop else None)
    model_args = {"img_size": img_size} if img_size else {}
    return {
        "architecture": cfg.model.name,
        "num_classes": len(class_names),
        "label_names": list(class_names),
        "model_args": model_args,
        "pretrained_cfg": {
            "input_size": [3, t.crop, t.crop],
            "interpolation": norm.interpolation if norm.interpolation != "random" else "bilinear",
            "mean": list(norm.mean),
            "std": list(norm.std),
            "crop_pct": round(t.crop / t.resize, 4),
            "crop_mode": "center",
            "num_classes": len(class_names),
        },
    }


def _metrics_table(metrics: dict[str, Any]) -> str:
    rows = ["| split | " + " | ".join(HEADLINE) + " | images |", "|---|" + "---|" * (len(HEADLINE) + 1)]
    for split in ("val", "test"):
        if split in metrics:
            values = [f"{metrics[split][k]:.4f}" if k in metrics[split] else "-" for k in HEADLINE]
            rows.append(f"| {split} | " + " | ".join(values) + f" | {metrics[split].get('n', '-')} |")
    return "\n".join(rows)


def model_card(cfg: ExperimentConfig, metrics: dict[str, Any], class_names: list[str], run_name: str,
               group_summary: Optional[dict[str, Any]] = None) -> str:
    d, m, s, o, t = cfg.data, cfg.model, cfg.strategy, cfg.optim, cfg.train
    labels = SOURCES.info(d.name).get("labels")  # the data set's label choices; the first is its default
    timm_reason = loads_in_timm(cfg)
    front = ["---", "library_name: timm" if timm_reason is None else "library_name: pytorch",
             "pipeline_tag: image-classification", "tags:", "- image-classification", "- fgvc",
             f"- {network_name(cfg).split(' + ')[0]}", f"datasets:\n- {d.name}", "metrics:\n- accuracy\n- f1", "---"]
    if ENGINES.info(t.engine).get("reports_epochs", True):
        recipe = (f"`{network_name(cfg)}` ({'pretrained' if m.pretrained else 'from scratch'}), engine `{t.engine}`, "
                  f"strategy `{s.name}` ({describe_strategy(s)})"
                  + f", {d.transforms.crop} px, optimizer `{o.name}` lr {o.lr:g} weight decay {o.weight_decay:g}, "
                  f"schedule `{cfg.schedule.name}`, loss `{cfg.loss.name}` (class weights {cfg.loss.class_weights}), "
                  f"{t.epochs} epoch{'s' if t.epochs != 1 else ''} of batch {t.batch_size}, seed {cfg.seed}")
    else:  # no epoch loop (probe, zero-shot, Tip-Adapter): no optimizer, schedule or epochs to name
        recipe = (f"`{network_name(cfg)}`, engine `{t.engine}` ({ENGINES.doc(t.engine)}), {d.transforms.crop} px, "
                  f"seed {cfg.seed}")
    parts = ["\n".join(front), f"# {run_name}", "",
             f"A fine-grained image classifier trained with fgvc on **{d.name}**"
             + (f" (label: {d.label or labels[0]})" if labels else "") + f": {len(class_names)} classes "
             f"({', '.join(class_names[:20])}{', ...' if len(class_names) > 20 else ''}).", "",
             "## Recipe", "", recipe + ". The whole config is `config.yaml`." + _head_init_line(metrics), "",
             "## Results", "", _metrics_table(metrics), "",
             "Top-1 accuracy, macro F1 and macro one-vs-rest AUROC on the data set's val and test splits; "
             "the test split took no part in any choice."]
    if group_summary:
        kind = {"repeat": "seeds", "crossval": "folds"}.get(group_summary.get("kind"), "runs")
        for split in ("val", "test"):
            table = group_summary["metrics"].get(split, {})
            rows = [(key, table[key]) for key in HEADLINE if key in table and table[key].get("ci_low") is not None]
            if rows:
                level = int(100 * rows[0][1].get("confidence", 0.95))
                parts += ["", f"This run is one of {len(group_summary['members'])} {kind} of the same recipe; "
                              f"over all of them ({split}, mean and {level} % CI):", ""]
                parts += [f"- {key}: {d['mean']:.4f} [{d['ci_low']:.4f}, {d['ci_high']:.4f}]" for key, d in rows]
    parts += ["", "## Intended use and limits", "",
              f"Research and prototyping on images like those of {d.name}: the same kind of camera, "
              "resolution and classes. It has seen no other classes and will still name one of its own for any "
              "image. Accuracy on rare classes is lower than the headline (see macro F1 and the per-class "
              "table in report.html). Check it on your own data before relying on it.", "",
              "## How to load it", ""]
    if timm_reason is None:
        parts += ["With plain timm (the folder holds `config.json` and `model.safetensors`):", "", "```python",
                  "import timm", 'model = timm.create_model("hf-hub:USER/REPO", pretrained=True)  # '
                  'or "local-dir:/path/to/folder"',
                  "model.eval()", "cfg = timm.data.resolve_data_config({}, model=model)",
                  "transform = timm.data.create_transform(**cfg)",
                  'labels = model.pretrained_cfg["label_names"]', "```", ""]
    else:
        parts += [f"Not loadable by plain timm: {timm_reason}.", ""]
    parts += ["With fgvc (the run folder):", "", "```python", "from fgvc.api import load_run, predict",
              f'run = load_run("{run_name}")', "probs = predict(run, images)  # an fgvc ImageList", "```",
              "", "or `fgvc predict RUN IMAGES_DIR`, `fgvc export RUN` (ONNX / TorchScript)."]
    return "\n".join(parts) + "\n"


def _head_init_line(metrics: dict[str, Any]) -> str:
    """Where the head started, when not from random init (model.head_init)."""
    head, wise = metrics.get("head_init"), metrics.get("wise_ft")
    if wise:
        tuned = f"`{wise['finetuned_run']}`" if wise.get("finetuned_run") else "this run's fine-tune (best.ckpt)"
        return (f" The weights are the WiSE-FT average (1 - alpha) x zero-shot + alpha x fine-tuned of "
                f"{tuned} and its zero-shot start, alpha {wise['alpha']:g} chosen on val.")
    if not head:
        return ""
    if head.get("how") == "source_classes":
        return (f" The head started from the pretrained classifier ({head['source']}) for {head['matched']} of its "
                f"{head['classes']} classes (model.head_init: source_classes); the others from random init.")
    return f" The head started from {head['source']}'s zero-shot text head (model.head_init: zero_shot)."


def write_model_card(run_dir: Path, metrics: Optional[dict[str, Any]] = None,
                     class_names: Optional[list[str]] = None, group_summary: Optional[dict[str, Any]] = None) -> Path:
    """README.md, and config.json when plain timm can load the network, into the run folder; a member
    of a group (repeat, crossval) also gets the group's means and CIs."""
    folder = RunFolder(run_dir)
    cfg = load_config(folder.config_file)
    metrics = metrics if metrics is not None else folder.metrics()
    class_names = class_names or folder.class_names() or []
    folder.model_card.write_text(model_card(cfg, metrics, class_names, folder.path.name, group_summary))
    if loads_in_timm(cfg) is None:
        folder.timm_config.write_text(json.dumps(timm_config(cfg, class_names), indent=2))
    return folder.model_card
