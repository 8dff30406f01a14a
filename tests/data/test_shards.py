"""Packed shards (LitData, WebDataset): written from a source with its bytes unchanged, resumable, read
back as data.name: shards from a folder and from a real nginx on localhost, trained on, and bad input
named in one line."""

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
from builders import history_rows

from fgvc.config import DataConfig, load_config
from fgvc.data import load_data
from fgvc.data.datamodule import EpochSampler, FgvcDataModule
from fgvc.data.shards.pack import pack_data
from fgvc.errors import DataError
from fgvc.train.run import resume, train

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)


def source_config(colour_data) -> DataConfig:
    return DataConfig(name="image_folder", root=colour_data / "train", test_root=colour_data / "test",
                      val_fraction=0.25)


@pytest.fixture(scope="module")
def packed(colour_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("packed") / "colours"
    pack_data(source_config(colour_data), out, chunk_bytes="8KB")  # ~6 images a chunk: several chunks a split
    return out


def shard_config(root, tmp_path, **more) -> DataConfig:
    return DataConfig(name="shards", root=str(root), cache_dir=tmp_path / "cache", **more)


def test_pack_writes_every_split_with_its_bytes_labels_and_a_manifest(colour_data, packed, tmp_path):
    source = load_data(source_config(colour_data))
    manifest = json.loads((packed / "manifest.json").read_text())
    assert manifest["format"] == "litdata" and manifest["version"] == 1 and manifest["source"] == "image_folder"
    assert manifest["classes"] == ["blue", "green", "red"]
    assert manifest["splits"] == {"train": 36, "val": 12, "test": 12}
    assert len(manifest["fingerprint"]) == 32
    assert len(list((packed / "train").glob("chunk-*.bin"))) > 1
    shards = load_data(shard_config(packed, tmp_path))
    for split in ("train", "val", "test"):  # the same images fgvc's own split gives, bytes untouched
        mine, theirs = getattr(shards, split), getattr(source, split)
        assert list(mine.labels) == list(theirs.labels)
        assert [mine.content_bytes(i) for i in range(len(mine))] == [p.read_bytes() for p in theirs.paths]
    assert shards.train.key(0) == f"{packed}/train/{colour_data.name}/train/blue/blue_001.png"
    assert np.array_equal(np.asarray(shards.test.load(3)), np.asarray(source.test.load(3)))


def test_a_killed_pack_resumes_keeping_finished_splits(colour_data, packed, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(packed, out)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["splits"]["test"]  # killed while writing test: train and val finished
    (out / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(out / "test")
    kept = {p: p.stat().st_mtime_ns for p in (out / "train").iterdir()}
    again = pack_data(source_config(colour_data), out, chunk_bytes="8KB")
    assert again.splits == {"train": 36, "val": 12, "test": 12}
    assert {p: p.stat().st_mtime_ns for p in (out / "train").iterdir()} == kept
    assert sorted(p.name for p in (out / "test").iterdir()) == sorted(p.name for p in (packed / "test").iterdir())


class Killed(Exception):
    pass


def test_a_pack_killed_mid_split_resumes_from_its_last_chunk(colour_data, packed, tmp_path):
    out = tmp_path / "cut"

    def kill_after_three_chunks(split, done, total):
        if split == "train" and len(list((out / ".partial-train").glob("chunk-*.bin"))) == 3:
            raise Killed

    with pytest.raises(Killed):
        pack_data(source_config(colour_data), out, chunk_bytes="8KB", progress=kill_after_three_chunks)
    assert json.loads((out / "manifest.json").read_text())["splits"] == {}
    kept = {p.name: p.stat().st_mtime_ns for p in (out / ".partial-train").glob("chunk-*.bin")}
    pack_data(source_config(colour_data), out, chunk_bytes="8KB")
    assert {n: (out / "train" / n).stat().st_mtime_ns for n in kept} == kept  # not written again
    index = json.loads((out / "train" / "index.json").read_text())
    assert index["chunks"] == json.loads((packed / "train" / "index.json").read_text())["chunks"]
    assert all((out / "train" / c["filename"]).read_bytes() == (packed / "train" / c["filename"]).read_bytes()
               for c in index["chunks"])
    assert not (out / ".partial-train").exists() and not (out / "train" / ".checkpoints").exists()


def test_webdataset_pack_is_read_by_webdataset_and_resumes_by_shard(colour_data, tmp_path):
    import webdataset as wds

    out = tmp_path / "wds"
    cfg = source_config(colour_data)
    pack_data(cfg, out, "webdataset", shard_images=10)
    shards = sorted((out / "train").glob("shard-*.tar"))
    assert [p.name for p in shards] == [f"shard-00000{i}.tar" for i in range(4)]
    source = load_data(cfg).train
    samples = list(wds.WebDataset([str(p) for p in shards], shardshuffle=False))
    assert [s["png"] for s in samples] == [p.read_bytes() for p in source.paths]
    assert [int(s["cls"]) for s in samples] == list(source.labels)
    assert json.loads(samples[0]["json"])["id"] == f"{colour_data.name}/train/blue/blue_001.png"
    first = shards[0].stat().st_mtime_ns
    shards[-1].unlink()  # killed while writing the last shard of train
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["splits"] = {}
    (out / "manifest.json").write_text(json.dumps(manifest))
    pack_data(cfg, out, "webdataset", shard_images=10)
    assert shards[-1].is_file() and shards[0].stat().st_mtime_ns == first
    with pytest.raises(DataError, match="holds webdataset shards, .*pack with --format litdata"):
        load_data(shard_config(out, tmp_path))


@pytest.mark.parametrize("kind", ["cub_boxes", "unlabelled", "pixels"])
def test_boxes_unlabelled_images_and_pixels_come_back_as_the_source_gives_them(kind, tmp_path):
    from builders import make_cub, make_fashion_mnist_gz, make_kaggle_csv

    if kind == "cub_boxes":  # CUB's boxes crop each image, from shards as from the folder
        make_cub(tmp_path / "cub", classes=2, per_class=4)
        cfg = DataConfig(name="cub200", root=tmp_path / "cub", crop_to_box=True, val_fraction=0)
    elif kind == "unlabelled":  # a Kaggle test folder: label -1
        make_kaggle_csv(tmp_path / "kaggle")
        cfg = DataConfig(name="kaggle_csv", root=tmp_path / "kaggle", csv={"label_column": "breed", "test_dir": "test"},
                         val_fraction=0)
    else:  # Fashion-MNIST's in-memory pixels, written as lossless PNG
        make_fashion_mnist_gz(tmp_path / "fm", train=12, test=4)
        cfg = DataConfig(name="fashion_mnist", root=tmp_path / "fm", cache_dir=tmp_path / "fm-cache", val_fraction=0)
    pack_data(cfg, tmp_path / "packed")
    source, shards = load_data(cfg), load_data(shard_config(tmp_path / "packed", tmp_path, val_fraction=0))
    for split, images in source.named():
        mine = getattr(shards, split)
        assert list(mine.labels) == list(images.labels)
        assert [np.asarray(mine.load(i)).tolist() for i in range(len(mine))] == \
               [np.asarray(images.load(i)).tolist() for i in range(len(images))]
    if kind == "cub_boxes":
        assert shards.train.boxes is not None and shards.train.load(0).size != (40, 32)
    if kind == "unlabelled":
        assert len(shards.unlabelled) == 4 and (shards.unlabelled.labels == -1).all()


def train_overrides(root, tmp_path, name, epochs=1):
    return [
        "data.name=shards", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.num_workers=0",
        "data.transforms.resize=32", "data.transforms.crop=32", "model.name=resnet10t", "model.pretrained=false",
        f"train.epochs={epochs}", "train.batch_size=8", "eval.batch_size=16", "optim.lr=0.01", "schedule.name=none",
        f"output.dir={tmp_path / 'runs'}", f"output.name={name}",
    ]


def test_training_from_shards_equals_training_from_the_folder(colour_data, packed, tmp_path):
    sets = train_overrides(packed, tmp_path, "shards")
    from_shards = train(load_config(None, sets), progress=False)
    folder = [s for s in sets if not s.startswith(("data.name", "data.root", "output.name"))] + [
        "data.name=image_folder", f"data.root={colour_data / 'train'}", f"data.test_root={colour_data / 'test'}",
        "data.val_fraction=0.25", "output.name=folder"]
    from_folder = train(load_config(None, folder), progress=False)
    assert history_rows(from_shards.run_dir) == history_rows(from_folder.run_dir)
    assert from_shards.test["top1"] == from_folder.test["top1"] and "ece" in from_shards.test


def _train_labels(splits, seed):
    module = FgvcDataModule(splits, lambda image: np.array(image), lambda image: np.array(image), 8, 8, 0, seed)
    return [int(label) for _, labels in module.train_dataloader() for label in labels]


def test_shuffling_is_seeded_and_ranks_get_disjoint_equal_shares(packed, tmp_path, monkeypatch):
    splits = load_data(shard_config(packed, tmp_path))
    assert _train_labels(splits, 7) == _train_labels(splits, 7)
    assert _train_labels(splits, 7) != _train_labels(splits, 8)
    shares = []
    for rank in (0, 1):  # two DDP ranks, as the sampler sees them
        monkeypatch.setattr(EpochSampler, "_world", lambda self, rank=rank: (2, rank))
        shares.append([index for _, index in EpochSampler(len(splits.train), seed=7, shuffle=True)])
    assert len(shares[0]) == len(shares[1]) == 18
    assert not set(shares[0]) & set(shares[1]) and set(shares[0]) | set(shares[1]) == set(range(36))


# -- a real remote: nginx on localhost ---------------------------------------------------------------
class Nginx:
    """nginx serving ``folder`` on a free localhost port, with its own config in a temporary folder."""

    def __init__(self, folder: Path, work: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        work.mkdir(parents=True, exist_ok=True)
        temp = " ".join(f"{kind}_temp_path {work / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.conf = work / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""  # a root master's workers could not read tmp_path
        self.conf.write_text(f"""{user} daemon off; worker_processes 1; pid {work / 'nginx.pid'}; error_log {work / 'error.log'};
events {{ worker_connections 64; }}
http {{ access_log off; {temp} server {{ listen 127.0.0.1:{self.port}; root {folder}; }} }}
""")
        self.work, self.process = work, None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> "Nginx":
        self.process = subprocess.Popen([NGINX, "-c", str(self.conf), "-p", str(self.work), "-e", str(self.work / "error.log")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return self
            except OSError:
                if self.process.poll() is not None:
                    pytest.skip(f"nginx did not start: {self.process.stderr.read().decode().strip()}")
                time.sleep(0.05)
        pytest.skip("nginx did not answer within 5 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def served(packed, tmp_path):
    """The packed folder's parent served by nginx; yields (server, URI of the packed data set)."""
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx; .ci/run installs it)")
    site = tmp_path / "site"
    shutil.copytree(packed, site / "colours")
    server = Nginx(site, tmp_path / "nginx").start()
    yield server, f"{server.url}/colours"
    server.stop()


def test_shards_stream_from_nginx_with_only_their_indexes_cached(colour_data, packed, served, tmp_path):
    _, uri = served
    remote = load_data(shard_config(uri, tmp_path, cache_limit="1MB"))
    local = load_data(shard_config(packed, tmp_path / "local"))
    for split in ("train", "val", "test"):
        mine, theirs = getattr(remote, split), getattr(local, split)
        assert [mine.content_bytes(i) for i in range(len(mine))] == [theirs.content_bytes(i) for i in range(len(theirs))]
    assert remote.train.key(0) == f"{uri}/train/{colour_data.name}/train/blue/blue_001.png"
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert sorted({p.name for p in cached}) == ["index.json"] and sum(p.stat().st_size for p in cached) < 1_000_000
    with pytest.raises(DataError, match=r"^the indexes of .* take \d[\d,]* bytes in .*, over data.cache_limit \(100 bytes\)"):
        load_data(shard_config(uri, tmp_path, cache_limit="100B"))


class StopServerAt(L.Callback):
    def __init__(self, server, epoch, batch):
        self.server, self.epoch, self.batch = server, epoch, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            self.server.stop()


def test_a_server_gone_mid_epoch_names_the_uri_and_the_run_resumes_exactly(packed, served, tmp_path):
    server, uri = served
    whole = train(load_config(None, train_overrides(packed, tmp_path, "whole", epochs=2)), progress=False)
    cfg = load_config(None, train_overrides(uri, tmp_path, "cut", epochs=2))
    with pytest.raises(DataError) as stopped:
        train(cfg, callbacks=[StopServerAt(server, epoch=1, batch=1)], progress=False)
    message = str(stopped.value)
    assert "\n" not in message and message.startswith(f"shard server does not answer: {uri}/train/chunk-")
    assert "fgvc train --resume" in message
    server.start()
    resumed = resume(cfg.run_dir, progress=False)
    assert history_rows(resumed.run_dir) == history_rows(whole.run_dir)
    assert resumed.test["top1"] == whole.test["top1"]


# -- bad input: one line naming the shard or URI ---------------------------------------------------------
def test_a_truncated_shard_is_named(packed, served, tmp_path):
    server, uri = served
    chunk = max((server.conf.parent.parent / "site" / "colours" / "train").glob("chunk-*.bin"))
    chunk.write_bytes(chunk.read_bytes()[:100])
    remote = load_data(shard_config(uri, tmp_path)).train
    with pytest.raises(DataError, match=rf"^shard {uri}/train/{chunk.name} is truncated"):
        [remote.content_bytes(i) for i in range(len(remote))]
    local = tmp_path / "local"
    shutil.copytree(chunk.parent.parent, local)
    with pytest.raises(DataError, match=rf"^shard {local}/train/{chunk.name} is truncated or damaged: 100 bytes"):
        load_data(shard_config(local, tmp_path))


def test_a_manifest_that_does_not_match_its_shards_is_named(packed, tmp_path):
    out = tmp_path / "edited"
    shutil.copytree(packed, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["splits"]["val"] = 13
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=rf"^{out}/manifest.json says val holds 13 images but {out}/val/index.json lists 12"):
        load_data(shard_config(out, tmp_path))


def test_a_uri_that_does_not_answer_is_named(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    uri = f"http://127.0.0.1:{port}/colours"
    with pytest.raises(DataError, match=rf"^shard server does not answer: {uri}/manifest.json \("):
        load_data(shard_config(uri, tmp_path))


def test_the_pack_command_says_what_it_wrote_and_verify_reads_the_shards(colour_data, tmp_path):
    from typer.testing import CliRunner

    from fgvc.cli import app

    config = tmp_path / "exp.yaml"
    config.write_text(f"data: {{name: image_folder, root: {colour_data / 'train'}, test_root: {colour_data / 'test'}, "
                      f"val_fraction: 0.25, cache_dir: {tmp_path / 'cache'}}}\noutput: {{dir: {tmp_path / 'runs'}}}\n")
    packed = CliRunner().invoke(app, ["data", "pack", str(config), "--out", str(tmp_path / "packed")],
                                             env={"COLUMNS": "1000"})
    assert packed.exit_code == 0, packed.output
    # rich wraps at the width it found when fgvc's console was made (narrow under xdist), even inside a path
    said, expected = "".join(packed.output.split()), f"litdata shards of image_folder in {tmp_path / 'packed'}: train 36, val 12, test 12 (3 classes"
    assert "".join(expected.split()) in said, packed.output
    verify = CliRunner().invoke(app, ["data", "verify", str(config), "--set", "data.name=shards",
                                      "--set", f"data.root={tmp_path / 'packed'}"], env={"COLUMNS": "1000"})
    assert verify.exit_code == 0, verify.output
    assert "nounreadablefiles,noduplicatesacrosssplits,nolabelconflicts" in "".join(verify.output.split())
    refused = CliRunner().invoke(app, ["data", "pack", str(config), "--out", str(tmp_path / "packed"),
                                       "--format", "webdataset"], env={"COLUMNS": "1000"})
    assert refused.exit_code == 2 and "holds litdata shards; write webdataset shards to another --out" in refused.output


def test_an_out_that_is_a_file_is_named_in_one_line(colour_data, tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("")
    with pytest.raises(DataError, match=r"--out .*taken/packed: cannot write there \(Not a directory\)"):
        pack_data(source_config(colour_data), blocker / "packed")


def test_unreadable_images_are_refused_before_packing_or_left_out_and_listed(colour_data, tmp_path):
    copy = tmp_path / "colours"
    shutil.copytree(colour_data, copy)
    (copy / "train" / "red" / "red_001.png").write_bytes(b"")  # an empty file
    data = DataConfig(name="image_folder", root=copy / "train", test_root=copy / "test", val_fraction=0.25,
                      cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=r"1 unreadable image .*red_001.png: empty file \(0 bytes\)"):
        pack_data(data, tmp_path / "refused")
    assert not (tmp_path / "refused" / "manifest.json").exists()  # refused before anything was written
    manifest = pack_data(data.model_copy(update={"skip_unreadable": True}), tmp_path / "packed")
    assert sum(manifest.splits.values()) == 59  # 60 images, one left out
    listed = (tmp_path / "packed" / "unreadable_images.txt").read_text().splitlines()
    assert len(listed) == 2 and listed[1].endswith("red_001.png\tempty file (0 bytes)")
    with pytest.raises(DataError, match="data.skip_unreadable does nothing for shards"):
        load_data(shard_config(tmp_path / "packed", tmp_path, skip_unreadable=True))
