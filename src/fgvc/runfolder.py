"""The run folder as a type: its layout, the atomic claim of a new run folder, the header, the status,
and readers for what other layers need (config, classes, metrics, predictions); checkpoints are read
by :mod:`fgvc.trust`. The folders of many runs and of generated images are :mod:`fgvc.groupfolder`'s.

RUN_DIR/               one run (RunFolder)
  run.json             status (running, finished, failed, stopped), reason, pid, times: the claim marker
  config.yaml          the resolved config (what `--resume`, `fgvc eval`, `explain` rebuild from)
  classes.json         class names, in label order
  history.csv          one row per epoch; learning_curves.png
  checkpoints/         best.ckpt, last.ckpt (Lightning), model.safetensors (plain weights, LoRA merged),
                       probe_head.pt (feature probe: the head alone), zero_shot_head.safetensors,
                       tip_adapter.safetensors (CLIP engines: head and cache; the tower from its weights)
  train_images.txt     the training images a data.limit_per_class draw kept (k-shot), one a line
  unreadable_images.txt   image files data.skip_unreadable left out: split, path, reason (tab-separated)
  metrics.json         val and test metrics, parameter counts, weights report, timings
  metrics_<split>.json, predictions_<split>.csv, confusion_matrix.png, reliability.png, report.html
  README.md, config.json   the model card and timm's hub config
  explain/             <image>_<method>.png overlays, explanations.csv, gallery.png
  export/              model.onnx / model.pt, model.int8-<mode>.onnx, export.json
  generator.json, samples/   generator runs (GAN, diffusion): samples/epoch_NNN.png, samples/latest.png
  lr_find.png, data_verify.json, samples.png   `fgvc tune lr`, `fgvc data verify`, `fgvc data show`

Every module that reads or writes one of these files goes through this type (or GroupFolder), so the
layout is said once. This module imports nothing of fgvc but the errors and :mod:`fgvc.locks`, so every
layer may use it.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from fgvc.errors import FgvcError
from fgvc.locks import file_lock, lock_beside, write_atomically

# The prediction CSV: fixed columns, then one probability column per class (``p_<class name>``).
PREDICTION_COLUMNS = ("image", "target", "target_name", "predicted", "predicted_name", "confidence")
PROBABILITY_PREFIX = "p_"


class RunFolderError(FgvcError):
    """A run folder is missing, not a run folder, or busy with another process."""


@dataclass(frozen=True)
class Prediction:
    """One row of ``predictions_<split>.csv``."""

    image: str
    target: int
    target_name: str
    predicted: int
    predicted_name: str
    confidence: float
    probs: tuple[float, ...]

    @property
    def right(self) -> bool:
        return self.target == self.predicted


class RunFolder:
    """One run's folder. ``RunFolder.claim(base)`` makes a new one; ``RunFolder(path)`` opens any."""

    STATUS = "run.json"
    CONFIG = "config.yaml"
    CLASSES = "classes.json"
    HISTORY = "history.csv"
    LEARNING_CURVES = "learning_curves.png"
    CHECKPOINTS = "checkpoints"
    BEST = "best"
    LAST = "last"
    WEIGHTS = "model.safetensors"
    PROBE_HEAD = "probe_head.pt"
    ZERO_SHOT_HEAD = "zero_shot_head.safetensors"  # the zero-shot engine's text head (the tower comes from its weights)
    TIP_ADAPTER = "tip_adapter.safetensors"  # the tip_adapter engine's text head and cache (the tower: as above)
    TRAIN_IMAGES = "train_images.txt"  # the images a data.limit_per_class draw kept
    UNREADABLE = "unreadable_images.txt"  # the files data.skip_unreadable left out
    METRICS = "metrics.json"
    SPLIT_METRICS = "metrics_{split}.json"
    PREDICTED_WITH = "predicted_with"  # in metrics_<split>.json: the checkpoint and TTA of predictions_<split>.csv
    PREDICTIONS = "predictions_{split}.csv"
    CONFUSION = "confusion_matrix.png"
    RELIABILITY = "reliability.png"
    REPORT = "report.html"
    EXPORT = "export"  # fgvc export's folder: model.onnx / model.pt, export.json
    EXPORT_RECORD = "export.json"
    ONNX_MODEL = "model.onnx"
    QUANTIZED_ONNX_MODEL = "model.int8-{mode}.onnx"
    TORCHSCRIPT_MODEL = "model.pt"
    MODEL_CARD = "README.md"  # Hugging Face model card
    TIMM_CONFIG = "config.json"  # timm's hub layout, beside model.safetensors when pushed
    EXPLAIN = "explain"
    OVERLAY = "{image}_{method}.png"  # in explain/: one image's heat map over it
    GALLERY = "gallery.png"
    EXPLANATIONS = "explanations.csv"
    GENERATOR = "generator.json"
    SAMPLES = "samples"
    EPOCH_SAMPLES = "epoch_{epoch:03d}.png"  # a generator's progress grid after each epoch, in samples/
    LATEST_SAMPLES = "latest.png"  # the newest of them
    LR_FIND = "lr_find.png"
    DATA_VERIFY = "data_verify.json"
    DATA_PREVIEW = "samples.png"
    LOGS = "logs"  # Lightning's CSVLogger folder: logs/metrics.csv
    CSV_LOG = "metrics.csv"
    PIPELINE_PLAN = "plan.json"  # fgvc pipeline plan --out DIR: the plan and its plot
    PIPELINE_PLAN_PLOT = "plan.png"
    LOCK = ".lock"

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    # -- layout -------------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / self.CONFIG

    @property
    def classes_file(self) -> Path:
        return self.path / self.CLASSES

    @property
    def history_file(self) -> Path:
        return self.path / self.HISTORY

    @property
    def learning_curves(self) -> Path:
        return self.path / self.LEARNING_CURVES

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    def checkpoint(self, which: str = "last") -> Path:
        """``checkpoints/<which>.ckpt`` (best or last)."""
        return self.checkpoints / f"{which}.ckpt"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoint(self.LAST)

    @property
    def weights_file(self) -> Path:
        return self.checkpoints / self.WEIGHTS

    @property
    def probe_head_file(self) -> Path:
        return self.checkpoints / self.PROBE_HEAD

    @property
    def zero_shot_head_file(self) -> Path:
        return self.checkpoints / self.ZERO_SHOT_HEAD

    @property
    def tip_adapter_file(self) -> Path:
        return self.checkpoints / self.TIP_ADAPTER

    @property
    def train_images_file(self) -> Path:
        return self.path / self.TRAIN_IMAGES

    @property
    def unreadable_file(self) -> Path:
        return self.path / self.UNREADABLE

    @property
    def metrics_file(self) -> Path:
        return self.path / self.METRICS

    def split_metrics_file(self, split: str) -> Path:
        return self.path / self.SPLIT_METRICS.format(split=split)

    def predictions_file(self, split: str = "test") -> Path:
        return self.path / self.PREDICTIONS.format(split=split)

    @property
    def confusion_matrix(self) -> Path:
        return self.path / self.CONFUSION

    @property
    def reliability_diagram(self) -> Path:
        return self.path / self.RELIABILITY

    @property
    def export_dir(self) -> Path:
        return self.path / self.EXPORT

    @property
    def onnx_model(self) -> Path:
        return self.export_dir / self.ONNX_MODEL

    @property
    def model_card(self) -> Path:
        return self.path / self.MODEL_CARD

    @property
    def timm_config(self) -> Path:
        return self.path / self.TIMM_CONFIG

    @property
    def report_file(self) -> Path:
        return self.path / self.REPORT

    @property
    def explain_dir(self) -> Path:
        return self.path / self.EXPLAIN

    @property
    def gallery_file(self) -> Path:
        return self.explain_dir / self.GALLERY

    @property
    def generator_file(self) -> Path:
        return self.path / self.GENERATOR

    @property
    def samples_dir(self) -> Path:
        return self.path / self.SAMPLES

    @property
    def latest_samples(self) -> Path:
        return self.samples_dir / self.LATEST_SAMPLES

    def epoch_samples(self, epoch: int) -> Path:
        return self.samples_dir / self.EPOCH_SAMPLES.format(epoch=epoch)

    @property
    def lr_find_plot(self) -> Path:
        return self.path / self.LR_FIND

    @property
    def data_verify_file(self) -> Path:
        return self.path / self.DATA_VERIFY

    @property
    def data_preview(self) -> Path:
        return self.path / self.DATA_PREVIEW

    @property
    def csv_log(self) -> Path:
        return self.path / self.LOGS / self.CSV_LOG

    @property
    def pipeline_plan(self) -> Path:
        return self.path / self.PIPELINE_PLAN

    @property
    def pipeline_plan_plot(self) -> Path:
        return self.path / self.PIPELINE_PLAN_PLOT

    @property
    def status_file(self) -> Path:
        return self.path / self.STATUS

    # -- making one ---------------------------------------------------------------------------
    @staticmethod
    def candidates(base: Path | str) -> Iterator[Path]:
        """``base``, ``base-2``, ``base-3``...: where :meth:`claim` looks, in order."""
        base, n = Path(base), 1
        while True:
            yield base if n == 1 else base.with_name(f"{base.name}-{n}")
            n += 1

    @classmethod
    def claim(cls, base: Path | str, launch: Optional[str] = None) -> "RunFolder":
        """A new run folder: ``base``, or ``base-2``, ``base-3``... The claim is an exclusive create of
        ``run.json`` inside it, so processes started together always get distinct folders. ``launch``:
        the id of a cluster launch whose other ranks look for this folder (:func:`claim_or_join`)."""
        for candidate in cls.candidates(base):
            if (candidate / cls.CONFIG).exists():  # a run from before run.json existed
                continue
            try:
                candidate.mkdir(parents=True, exist_ok=True)
                fd = os.open(candidate / cls.STATUS, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            except OSError as exc:
                raise RunFolderError(f"cannot make the run folder {candidate}: {exc.strerror or exc}; set output.dir "
                                     "to a folder you can write to") from None
            record = _status_record("claimed")
            if launch:
                record["launch"] = {"id": launch, "at": time.time()}
            with os.fdopen(fd, "w") as handle:
                json.dump(record, handle, indent=1)
            return cls(candidate)

    @staticmethod
    def check_writable(path: Path | str, what_to_do: str = "set output.dir to a folder you can write to") -> None:
        """One clear error, before any work, when ``path`` (a run folder, or one still to be made) cannot
        be written: the folder itself if it exists, else its parent (made if missing), must take a new file."""
        path = Path(path)
        target = path if path.is_dir() else path.parent
        try:
            target.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".fgvc-write-check-", dir=target)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise RunFolderError(f"cannot write in {target}: {exc.strerror or exc}; {what_to_do}") from None

    def write_header(self, config_yaml: str, class_names: list[str]) -> None:
        """config.yaml and classes.json, written once when the run starts."""
        self.config_file.write_text(config_yaml)
        self.classes_file.write_text(json.dumps(list(class_names), indent=1))

    # -- status -------------------------------------------------------------------------------
    def set_status(self, status: str, reason: Optional[str] = None, **extra: Any) -> None:
        """Record the run's state in run.json (``reason``: why it failed or stopped)."""
        record = self.status()
        record.update(_status_record(status))
        record.pop("reason", None)
        if reason:
            record["reason"] = reason
        record.update(extra)
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomically(self.status_file, json.dumps(record, indent=1))

    def status(self) -> dict[str, Any]:
        """run.json as a dict ({} for a folder without one)."""
        if not self.status_file.is_file():
            return {}
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Hold the folder's lock and keep run.json current: running, then finished, or failed with
        the error that ended the block (re-raised)."""
        with self.exclusive():
            self.set_status("running")
            try:
                yield
            except BaseException as exc:
                if self.status().get("status") == "running":  # a more precise record was not made inside
                    self.set_status("failed", str(exc) or type(exc).__name__)
                raise
            self.set_status("finished")

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the folder's lock while training in it: a second process (e.g. ``--resume`` of a run
        that is still going) gets a clear error instead of writing into the same files."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / self.LOCK, "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = self.status().get("pid")
                raise RunFolderError(
                    f"{self.path} is in use by another fgvc process{f' (pid {pid})' if pid else ''}; "
                    "wait for it to finish or stop it first"
                ) from None
            yield
        finally:
            handle.close()

    @contextlib.contextmanager
    def reserved(self, on_wait: Callable[[Optional[int]], None] = lambda pid: None) -> Iterator[None]:
        """Hold this folder's reservation (a lock beside it) while deciding what to do with it and
        doing it: a second process waits (``on_wait(pid)`` is called once) and then finds what the
        first left, instead of deleting or training a folder the first is working in."""
        with file_lock(lock_beside(self.path), on_wait):  # beside it: deleting the folder keeps the lock
            yield

    # -- readers ------------------------------------------------------------------------------
    def require(self) -> "RunFolder":
        """This folder, or a clear error when it is no run folder."""
        if not self.path.is_dir():
            raise RunFolderError(f"run folder not found: {self.path}")
        if not self.config_file.is_file():
            raise RunFolderError(f"{self.path} is not a run folder (no {self.CONFIG}); pass the folder `fgvc train` wrote")
        return self

    def class_names(self) -> Optional[list[str]]:
        return json.loads(self.classes_file.read_text()) if self.classes_file.is_file() else None

    def metrics(self) -> dict[str, Any]:
        if not self.metrics_file.is_file():
            raise RunFolderError(f"{self.path} has no {self.METRICS}; the run has not finished (train or resume it)")
        return json.loads(self.metrics_file.read_text())

    def write_train_images(self, keys: list[str]) -> Path:
        """train_images.txt: the training images a data.limit_per_class draw kept, one a line."""
        self.train_images_file.write_text("".join(f"{key}\n" for key in keys))
        return self.train_images_file

    def write_unreadable(self, rows: list[tuple[str, str, str]]) -> Path:
        """unreadable_images.txt: (split, image, reason) of each file data.skip_unreadable left out."""
        self.unreadable_file.write_text("split\timage\treason\n" + "".join(f"{s}\t{i}\t{r}\n" for s, i, r in rows))
        return self.unreadable_file

    def write_metrics(self, metrics: dict[str, Any], split: Optional[str] = None) -> Path:
        path = self.split_metrics_file(split) if split else self.metrics_file
        path.write_text(json.dumps(metrics, indent=2))
        return path

    def predictions(self, split: str = "test") -> list[Prediction]:
        """The rows of predictions_<split>.csv."""
        path = self.predictions_file(split)
        if not path.is_file():
            raise RunFolderError(f"{self.path} has no {path.name}; train it or run `fgvc eval` on it first")
        with path.open() as handle:
            reader = csv.DictReader(handle)
            prob_columns = [c for c in (reader.fieldnames or []) if c.startswith(PROBABILITY_PREFIX)]
            return [Prediction(r["image"], int(r["target"]), r["target_name"], int(r["predicted"]),
                               r["predicted_name"], float(r["confidence"]),
                               tuple(float(r[c]) for c in prob_columns)) for r in reader]

    def predicted_with(self, split: str) -> dict[str, Any]:
        """The checkpoint and TTA views predictions_<split>.csv was made with ({} when not recorded)."""
        try:
            record = json.loads(self.split_metrics_file(split).read_text()).get(self.PREDICTED_WITH)
        except (OSError, ValueError, AttributeError):
            return {}
        return record if isinstance(record, dict) else {}

    def history(self) -> list[dict[str, str]]:
        if not self.history_file.is_file():
            return []
        with self.history_file.open() as handle:
            return list(csv.DictReader(handle))

    def history_epochs(self) -> list[int]:
        """The epochs history.csv has a row for (0-based, as in the file)."""
        return [int(row["epoch"]) for row in self.history() if str(row.get("epoch", "")).isdigit()]


def _status_record(status: str) -> dict[str, Any]:
    return {"status": status, "pid": os.getpid(), "time": _dt.datetime.now().isoformat(timespec="seconds")}
