"""Tiny data sets in each real data set's exact on-disk layout (generated images, real .mat/.txt/.csv)."""

from __future__ import annotations

import csv
import gzip
import os
import signal
import struct
from pathlib import Path

import lightning as L
import numpy as np
from PIL import Image
from scipy.io import savemat


def write_image(path: Path, seed: int, size: tuple[int, int] = (40, 32), fmt: str | None = None) -> Path:
    """A small image whose content depends on ``seed`` (so no two seeds collide)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def cell_array(strings: list[str]) -> np.ndarray:
    """A MATLAB N x 1 cell array of strings, as in the Stanford Dogs lists."""
    cells = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cells[i, 0] = np.array([s])
    return cells


def make_cub(root: Path, classes: int = 3, per_class: int = 4) -> Path:
    """CUB_200_2011/ with images.txt, image_class_labels.txt, train_test_split.txt, classes.txt, bounding_boxes.txt."""
    base = root / "CUB_200_2011"
    names = [f"{c + 1:03d}.Bird_number_{c + 1}" for c in range(classes)]
    lines = {k: [] for k in ("images", "labels", "split", "boxes")}
    image_id = 0
    for c, name in enumerate(names):
        for k in range(per_class):
            image_id += 1
            rel = f"{name}/{name.split('.')[1]}_{k:04d}_{image_id}.jpg"
            write_image(base / "images" / rel, seed=image_id, size=(40, 32))
            lines["images"].append(f"{image_id} {rel}")
            lines["labels"].append(f"{image_id} {c + 1}")
            lines["split"].append(f"{image_id} {1 if k < per_class // 2 + 1 else 0}")
            lines["boxes"].append(f"{image_id} {2.0 + c} 3.0 {20.0 + k} 16.0")
    files = {"images": "images.txt", "labels": "image_class_labels.txt", "split": "train_test_split.txt", "boxes": "bounding_boxes.txt"}
    for key, name in files.items():
        (base / name).write_text("\n".join(lines[key]) + "\n")
    (base / "classes.txt").write_text("\n".join(f"{i + 1} {n}" for i, n in enumerate(names)) + "\n")
    return base


DOG_SYNSETS = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02085936-Maltese_dog"]


def make_stanford_dogs(root: Path, per_class_train: int = 3, per_class_test: int = 2) -> Path:
    """Images/<synset>/<file>.jpg and lists/{train,test}_list.mat (file_list, annotation_list, labels)."""
    seed = 1000
    for split, count in (("train", per_class_train), ("test", per_class_test)):
        files, labels = [], []
        for c, synset in enumerate(DOG_SYNSETS):
            for k in range(count):
                seed += 1
                rel = f"{synset}/{synset.split('-')[0]}_{seed}.jpg"
                write_image(root / "Images" / rel, seed=seed)
                files.append(rel)
                labels.append(c + 1)
        (root / "lists").mkdir(parents=True, exist_ok=True)
        savemat(
            root / "lists" / f"{split}_list.mat",
            {
                "file_list": cell_array(files),
                "annotation_list": cell_array([f.removesuffix(".jpg") for f in files]),
                "labels": np.array(labels, dtype=float).reshape(-1, 1),
            },
        )
    return root


def make_flowers102(root: Path, classes: int = 3, per_split: int = 2) -> Path:
    """flowers-102/{jpg/image_00001.jpg, imagelabels.mat, setid.mat}."""
    base = root / "flowers-102"
    labels, sets = [], {"trnid": [], "valid": [], "tstid": []}
    image_id = 0
    for c in range(classes):
        for split in sets:
            for _ in range(per_split):
                image_id += 1
                write_image(base / "jpg" / f"image_{image_id:05d}.jpg", seed=2000 + image_id)
                labels.append(c + 1)
                sets[split].append(image_id)
    savemat(base / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
    savemat(base / "setid.mat", {k: np.array([v], dtype=np.uint16) for k, v in sets.items()})
    return root


AIRCRAFT = [("707-320", "Boeing 707", "Boeing"), ("727-200", "Boeing 727", "Boeing"), ("A300B4", "A300", "Airbus")]


def make_fgvc_aircraft(root: Path, per_split: int = 2) -> Path:
    """fgvc-aircraft-2013b/data/{images/, variants.txt, families.txt, manufacturers.txt, images_<level>_<split>.txt}."""
    data = root / "fgvc-aircraft-2013b" / "data"
    image_id = 1000000
    rows = {s: [] for s in ("train", "val", "test")}
    for variant in AIRCRAFT:
        for split in rows:
            for _ in range(per_split):
                image_id += 1
                write_image(data / "images" / f"{image_id}.jpg", seed=image_id)
                rows[split].append((str(image_id), variant))
    for level, column in (("variant", 0), ("family", 1), ("manufacturer", 2)):
        names = sorted({a[column] for a in AIRCRAFT})
        plural = {"variant": "variants", "family": "families", "manufacturer": "manufacturers"}[level]
        (data / f"{plural}.txt").write_text("\n".join(names) + "\n")
        for split, items in rows.items():
            (data / f"images_{level}_{split}.txt").write_text("".join(f"{i} {v[column]}\n" for i, v in items))
        trainval = rows["train"] + rows["val"]
        (data / f"images_{level}_trainval.txt").write_text("".join(f"{i} {v[column]}\n" for i, v in trainval))
    return root


CAR_CLASSES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012"]


def _car_annotations(entries: list[tuple[str, int]]) -> np.ndarray:
    dtype = [(k, "O") for k in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
    array = np.empty((1, len(entries)), dtype=dtype)
    for i, (fname, cls) in enumerate(entries):
        array[0, i] = (np.array([[1]]), np.array([[2]]), np.array([[30]]), np.array([[20]]), np.array([[cls]]), np.array([fname]))
    return array


def make_stanford_cars(root: Path, per_class_train: int = 3, per_class_test: int = 2) -> Path:
    """stanford_cars/{devkit/cars_meta.mat, devkit/cars_train_annos.mat, cars_train/, cars_test_annos_withlabels.mat, cars_test/}."""
    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True, exist_ok=True)
    names = np.empty((1, len(CAR_CLASSES)), dtype=object)
    for i, n in enumerate(CAR_CLASSES):
        names[0, i] = np.array([n])
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": names})
    seed = 3000
    for split, count, annos in (("train", per_class_train, base / "devkit" / "cars_train_annos.mat"),
                                ("test", per_class_test, base / "cars_test_annos_withlabels.mat")):
        entries = []
        for c in range(len(CAR_CLASSES)):
            for _ in range(count):
                seed += 1
                fname = f"{seed:05d}.jpg"
                write_image(base / f"cars_{split}" / fname, seed=seed)
                entries.append((fname, c + 1))
        savemat(annos, {"annotations": _car_annotations(entries)})
    return root


PET_BREEDS = [("Abyssinian", 1), ("american_bulldog", 2), ("Bengal", 1)]


def make_oxford_pets(root: Path, per_split: int = 2) -> Path:
    """oxford-iiit-pet/{images/<Breed>_<n>.jpg, annotations/trainval.txt, annotations/test.txt}."""
    base = root / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    n = 0
    for split in ("trainval", "test"):
        lines = []
        for class_id, (breed, species) in enumerate(PET_BREEDS, start=1):
            for _ in range(per_split):
                n += 1
                image_id = f"{breed}_{n}"
                write_image(base / "images" / f"{image_id}.jpg", seed=4000 + n)
                lines.append(f"{image_id} {class_id} {species} 1")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_image_folder(root: Path, classes=("cat", "dog", "fox"), per_class: int = 4, seed: int = 5000) -> Path:
    for c, name in enumerate(classes):
        for k in range(per_class):
            write_image(root / name / f"{name}_{k}.png", seed=seed + 100 * c + k)
    return root


def make_kaggle_csv(root: Path, label_column: str = "breed", per_class: int = 3, test_images: int = 4) -> Path:
    """labels.csv (id,<label>), train/<id>.jpg, test/<id>.jpg: the dog-breed-identification layout."""
    rows = []
    for c, breed in enumerate(("beagle", "boxer", "pug")):
        for k in range(per_class):
            image_id = f"{c:02x}{k:030x}"
            write_image(root / "train" / f"{image_id}.jpg", seed=6000 + 10 * c + k)
            rows.append((image_id, breed))
    with (root / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", label_column])
        writer.writerows(rows)
    for k in range(test_images):
        write_image(root / "test" / f"{k + 1}.jpg", seed=7000 + k)
    return root


def _idx(data: np.ndarray) -> bytes:
    code = 0x08  # unsigned byte
    header = struct.pack(">HBB", 0, code, data.ndim) + struct.pack(f">{data.ndim}I", *data.shape)
    return header + data.astype(np.uint8).tobytes()


def make_fashion_mnist_gz(root: Path, train: int = 30, test: int = 10) -> Path:
    """The four gzipped IDX files as Debian's dataset-fashion-mnist installs them."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", train), ("t10k", test)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = np.arange(count) % 10
        (root / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
        (root / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))
    return root


def make_elpv(root: Path) -> Path:
    """labels.csv (path, probability, type; whitespace separated) and images/, as the elpv-dataset package ships."""
    probabilities = ["0.0", "0.3333333333333333", "0.6666666666666666", "1.0"]
    lines = []
    n = 0
    for grade, probability in enumerate(probabilities):
        for cell_type in ("mono", "poly"):
            for _ in range(4):
                n += 1
                path = f"images/cell{n:04d}.png"
                array = np.random.default_rng(8000 + n).integers(0, 256, size=(30, 30), dtype=np.uint8)
                (root / "images").mkdir(parents=True, exist_ok=True)
                Image.fromarray(array, mode="L").save(root / path)
                lines.append(f"{path}  {probability:<20}{cell_type}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def make_colour_classes(root: Path, per_class: int = 16, size: int = 24, seed: int = 123) -> Path:
    """A learnable ImageFolder: class = dominant colour (red / green / blue) plus noise."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(("red", "green", "blue")):
        for k in range(per_class):
            pixels = rng.integers(0, 90, size=(size, size, 3)).astype(np.uint8)
            pixels[..., c] = rng.integers(150, 256, size=(size, size))
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / name / f"{name}_{k:03d}.png")
    return root


def make_tiny_stable_diffusion(folder: Path) -> Path:
    """A randomly initialised, tiny Stable Diffusion pipeline (character-level CLIP tokenizer), saved like
    a real one: the same loading and generation code paths, no download."""
    import json

    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    import torch

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in [chr(c) for c in range(ord("a"), ord("z") + 1)] + list(" ,.-"):
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=32)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=37,
                                        num_attention_heads=4, num_hidden_layers=2, max_position_embeddings=32,
                                        bos_token_id=0, eos_token_id=1, pad_token_id=1))
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=8, attention_head_dim=4)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(16, 32), latent_channels=4,
                        norm_num_groups=8, sample_size=16)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                   scheduler=DDIMScheduler(num_train_timesteps=100), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder / "pipeline")
    return folder / "pipeline"


def write_colour_config(path: Path, colour_data: Path, runs: Path, workers: int = 0, epochs: int = 1,
                        batch_size: int = 8, hflip: float = 0.0, strategy: str = "{name: full}",
                        schedule: str = "{name: none}") -> Path:
    """A YAML experiment on the colour fixture with a tiny random resnet10t (for `fgvc` subprocesses)."""
    path.write_text(f"""
data: {{name: image_folder, root: {colour_data / 'train'}, test_root: {colour_data / 'test'}, val_fraction: 0.25,
       num_workers: {workers}, transforms: {{resize: 24, crop: 24, hflip: {hflip}}}}}
model: {{name: resnet10t, pretrained: false}}
strategy: {strategy}
train: {{epochs: {epochs}, batch_size: {batch_size}}}
schedule: {schedule}
output: {{dir: {runs}}}
""")
    return path


def history_rows(run_dir: Path) -> list[dict]:
    """A run's history.csv rows without its wall times (what two equal runs share)."""
    with (Path(run_dir) / "history.csv").open() as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


class KillAtEpoch(L.Callback):
    """Fails a run as a kill would, when epoch ``epoch`` starts (its checkpoints up to there are on disk),
    or, ``after_history_row``, right after that epoch's history row is written and before its checkpoint
    (fgvc's EpochSummary runs before the callbacks passed in; Lightning checkpoints last)."""

    def __init__(self, epoch: int, after_history_row: bool = False):
        self.epoch, self.after_history_row = epoch, after_history_row

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch and not self.after_history_row:
            raise RuntimeError("killed")

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch and self.after_history_row:
            raise RuntimeError("killed")


class SigkillAt(L.Callback):
    """``kill -9`` of its own process after batch ``batch`` of epoch ``epoch``: a real kill at a point
    known in advance (mid-epoch, data-loader workers prefetching, that epoch's checkpoint not written)."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


def make_tiny_open_clip(folder: Path, name: str) -> Path:
    """A 32 px, 2-block ViT / 1-layer text CLIP (~7 MB) registered with open_clip as ``name`` (built from a
    config, nothing downloaded; its tokenizer ships in the package), random weights saved in a file."""
    import json

    import open_clip
    import torch

    config = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8,
                                              "head_width": 32},
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (folder / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / f"{name}.json")
    torch.manual_seed(0)
    path = folder / "tiny_clip.pt"
    torch.save(open_clip.create_model(name).state_dict(), path)
    return path
