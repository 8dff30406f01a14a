"""Synthetic data sets: manifest round trip, train-only mixing, FID/KID behaviour."""

import csv

import numpy as np
import pytest
from builders import make_fashion_mnist_gz
from PIL import Image

from fgvc.config import DataConfig, load_config
from fgvc.data import load_data
from fgvc.data.images import ImageList
from fgvc.data.sources.synthetic import load_synthetic
from fgvc.errors import DataError, FgvcError
from fgvc.generate.extractors import timm_extractor
from fgvc.generate.quality import frechet_distance, kernel_distance, quality
from fgvc.generate.writer import SyntheticImage, write_synthetic


def fake_images(labels, seed=0, size=24):
    rng = np.random.default_rng(seed)
    return [SyntheticImage(Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)), label,
                           "gan", "ckpt/g.pt", seed=i, guidance=None, confidence=0.9) for i, label in enumerate(labels)]


def test_manifest_round_trip(tmp_path):
    manifest = write_synthetic(fake_images(["red", "green", "red", "T-shirt/top"]), tmp_path / "syn")
    rows = list(csv.DictReader(manifest.open()))
    assert [r["label"] for r in rows] == ["red", "green", "red", "T-shirt/top"]
    assert rows[0]["file"].startswith("red/") and rows[3]["file"].startswith("T-shirt_top/")
    assert rows[0]["generator"] == "gan" and rows[0]["checkpoint"] == "ckpt/g.pt" and rows[0]["confidence"] == "0.900000"
    images = load_synthetic(tmp_path / "syn", ["blue", "green", "red", "T-shirt/top"])
    assert images.labels.tolist() == [2, 1, 2, 3] and images.load(0).size == (24, 24)
    write_synthetic(fake_images(["blue"], seed=5), tmp_path / "syn")  # appends
    assert len(load_synthetic(tmp_path / "syn", ["blue", "green", "red", "T-shirt/top"])) == 5
    with pytest.raises(DataError, match=r"labels \['T-shirt/top'\] are not classes"):
        load_synthetic(tmp_path / "syn", ["blue", "green", "red"])


def test_synthetic_goes_into_train_only(colour_data, tmp_path):
    write_synthetic(fake_images(["red", "green", "blue"] * 10), tmp_path / "syn")
    base = dict(name="image_folder", root=colour_data / "train", test_root=colour_data / "test", val_fraction=0.25)
    real = load_data(DataConfig(**base))
    mixed = load_data(DataConfig(**base, synthetic={"path": tmp_path / "syn", "ratio": 0.5}))
    assert len(mixed.train) == len(real.train) + 18 and mixed.train.meta["synthetic"].sum() == 18
    assert mixed.val.paths == real.val.paths and mixed.test.paths == real.test.paths
    synthetic_files = {str(p) for p in mixed.train.paths if "syn" in str(p)}
    assert synthetic_files and not synthetic_files & {str(p) for p in mixed.val.paths + mixed.test.paths}
    counted = load_data(DataConfig(**base, synthetic={"path": tmp_path / "syn", "count": 5}))
    assert counted.train.meta["synthetic"].sum() == 5
    again = load_data(DataConfig(**base, synthetic={"path": tmp_path / "syn", "count": 5}))
    assert again.train.paths == counted.train.paths  # the same draw for the same split_seed
    with pytest.raises(DataError, match=r"data.synthetic.ratio 1.0 asks for 36 synthetic images but .*syn holds 30"):
        load_data(DataConfig(**base, synthetic={"path": tmp_path / "syn", "ratio": 1.0}))


def test_synthetic_into_an_in_memory_data_set(tmp_path):
    root = make_fashion_mnist_gz(tmp_path / "fm", train=40, test=10)
    write_synthetic(fake_images(["Sneaker", "Bag"] * 3, size=32), tmp_path / "syn")
    splits = load_data(DataConfig(name="fashion_mnist", root=root, cache_dir=tmp_path / "c", val_fraction=0,
                                  synthetic={"path": tmp_path / "syn", "count": 6}))
    assert splits.train.pixels.shape == (46, 28, 28)
    assert splits.train.labels[-6:].tolist() == [7, 8, 7, 8, 7, 8]


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    assert abs(frechet_distance(a, a)) < 1e-6
    near = frechet_distance(a, a + rng.normal(scale=0.1, size=a.shape))
    far = frechet_distance(a, a + rng.normal(scale=1.0, size=a.shape))
    assert 0 < near < far
    assert kernel_distance(a, a + rng.normal(scale=1.0, size=a.shape)) > kernel_distance(a, a.copy()) - 1e-9


def test_quality_with_a_named_backbone_extractor(colour_data):
    real = load_data(DataConfig(name="image_folder", root=colour_data / "train", val_fraction=0)).train
    pixels = np.stack([np.asarray(real.load(i)) for i in range(len(real))])
    noisy = np.clip(pixels + np.random.default_rng(1).normal(0, 60, pixels.shape), 0, 255).astype(np.uint8)
    extractor = timm_extractor("resnet10t", size=32)
    same = quality(real, ImageList(real.class_names, real.labels, pixels=pixels), extractor)
    worse = quality(real, ImageList(real.class_names, real.labels, pixels=noisy), extractor)
    key = "fid[resnet10t, random init]"
    assert abs(same[key]) < 1e-3 < worse[key]
    assert set(worse["per_class"]) == {"blue", "green", "red"}
    assert worse["extractor"] == "resnet10t, random init"


def test_filter_keeps_images_a_known_classifier_agrees_with(tiny_overrides, tmp_path):
    from fgvc.generate.label_filter import filter_synthetic
    from fgvc.train.run import train

    run = train(load_config(None, tiny_overrides + ["train.epochs=3", "schedule.name=cosine"]), progress=False)
    assert run.test["top1"] == 1.0  # the colour task is learnt: a known classifier

    def colour(channel, seed):
        rng = np.random.default_rng(seed)
        pixels = rng.integers(0, 90, (24, 24, 3)).astype(np.uint8)
        pixels[..., channel] = rng.integers(150, 256, (24, 24))
        return Image.fromarray(pixels)

    items = [SyntheticImage(colour(0, 1), "red", "test"), SyntheticImage(colour(1, 2), "green", "test"),
             SyntheticImage(colour(0, 3), "blue", "test"), SyntheticImage(colour(2, 4), "blue", "test")]
    write_synthetic(items, tmp_path / "syn")
    report = filter_synthetic(run.run_dir, tmp_path / "syn", tmp_path / "kept", threshold=0.5)
    assert report["kept"] == 3 and report["generated"] == 4
    assert report["per_class"]["blue"] == {"generated": 2, "kept": 1, "kept_fraction": 0.5}
    kept = list(csv.DictReader((tmp_path / "kept" / "manifest.csv").open()))
    assert sorted(r["label"] for r in kept) == ["blue", "green", "red"]
    assert all(float(r["confidence"]) >= 0.5 for r in kept)
    assert len(load_synthetic(tmp_path / "kept", ["blue", "green", "red"])) == 3


def test_diff_augment_is_per_image_differentiable_and_cuts_a_square_out():
    import torch

    from fgvc.generate.gan import diff_augment

    torch.manual_seed(0)
    images = torch.full((16, 3, 32, 32), 0.5, requires_grad=True)
    out = diff_augment(images)
    assert out.shape == images.shape
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    zeros = (out == 0).all(dim=1).flatten(1).sum(1)  # cutout (16 x 16) plus what the shift brought in
    assert (zeros >= 16 * 16).all() and len(set(zeros.tolist())) > 1  # the shifts differ from image to image
    levels = out.detach().amax(dim=(1, 2, 3))
    assert levels.std() > 0.05  # brightness / contrast drawn per image
    assert not torch.equal(diff_augment(images), diff_augment(images))


def test_gan_trains_resumes_and_samples_labelled_images(colour_data, tmp_path):
    from typer.testing import CliRunner

    from fgvc.cli import app
    from fgvc.generate.run import sample_generator, train_generator

    cfg = load_config(None, [
        "data.name=image_folder", f"data.root={colour_data / 'train'}", "data.val_fraction=0", "data.num_workers=0",
        "gan.image_size=32", "gan.width=8", "gan.z_dim=16", "gan.diff_augment=true", "train.epochs=1", "train.batch_size=8",
        f"output.dir={tmp_path}", "output.name=gan"])
    run_dir = train_generator(cfg, "gan", progress=False)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    with Image.open(run_dir / "samples" / "epoch_000.png") as grid:
        assert grid.size[0] > 32 and grid.size[1] >= 3 * 32  # one row per class
    resumed = train_generator(cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 2})}), "gan",
                              run_dir, resume=True, progress=False)
    assert (resumed / "samples" / "epoch_001.png").is_file() and not (resumed / "samples" / "epoch_002.png").exists()
    manifest = sample_generator(run_dir, per_class=3, out=tmp_path / "syn", seed=1)
    images = load_synthetic(tmp_path / "syn", ["blue", "green", "red"])
    assert np.bincount(images.labels).tolist() == [3, 3, 3]
    assert images.load(0).size == (32, 32)
    rows = list(csv.DictReader(manifest.open()))
    assert rows[0]["generator"] == "gan" and rows[0]["checkpoint"].endswith("last.ckpt")
    again = CliRunner().invoke(app, ["gan", "sample", str(run_dir), "--per-class", "2", "--out", str(tmp_path / "s2")])
    assert again.exit_code == 0, again.output
    assert len(load_synthetic(tmp_path / "s2", ["blue", "green", "red"])) == 6


def test_a_killed_generator_run_goes_on_from_its_last_epoch(colour_data, tmp_path):
    """last.ckpt is written after every epoch, not only when training ends: a run killed in its second epoch
    resumes from the first and writes the second epoch's samples."""
    from builders import KillAtEpoch

    from fgvc.generate.run import train_generator
    from fgvc.trust import read_checkpoint

    cfg = load_config(None, [
        "data.name=image_folder", f"data.root={colour_data / 'train'}", "data.val_fraction=0", "data.num_workers=0",
        "gan.image_size=32", "gan.width=8", "gan.z_dim=16", "train.epochs=2", "train.batch_size=8",
        f"output.dir={tmp_path}", "output.name=gan"])
    with pytest.raises(RuntimeError, match="killed"):
        train_generator(cfg, "gan", progress=False, callbacks=[KillAtEpoch(1)])
    run_dir = tmp_path / "gan"
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] == 0
    assert not (run_dir / "samples" / "epoch_001.png").exists()
    train_generator(cfg, "gan", run_dir, resume=True, progress=False)
    assert (run_dir / "samples" / "epoch_001.png").is_file()
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] == 1


def test_diffusion_trains_and_samples_with_guidance(colour_data, tmp_path):
    from fgvc.generate.run import sample_generator, train_generator

    cfg = load_config(None, [
        "data.name=image_folder", f"data.root={colour_data / 'train'}", "data.val_fraction=0", "data.num_workers=0",
        "diffusion.image_size=16", "diffusion.block_out_channels=[16, 32]", "diffusion.layers_per_block=1",
        "diffusion.num_train_timesteps=50", "diffusion.grid_steps=2", "train.epochs=1", "train.batch_size=8",
        f"output.dir={tmp_path}", "output.name=ddpm"])
    run_dir = train_generator(cfg, "diffusion", progress=False)
    assert (run_dir / "samples" / "latest.png").is_file()
    manifest = sample_generator(run_dir, per_class=2, out=tmp_path / "syn", seed=3, steps=3, guidance=2.0)
    images = load_synthetic(tmp_path / "syn", ["blue", "green", "red"])
    assert np.bincount(images.labels).tolist() == [2, 2, 2] and images.load(0).size == (16, 16)
    rows = list(csv.DictReader(manifest.open()))
    assert rows[0]["generator"] == "diffusion" and rows[0]["guidance"] == "2.0"
    # the same seed gives the same images
    sample_generator(run_dir, per_class=2, out=tmp_path / "again", seed=3, steps=3, guidance=2.0)
    again = load_synthetic(tmp_path / "again", ["blue", "green", "red"])
    assert np.array_equal(np.asarray(images.load(0)), np.asarray(again.load(0)))


def test_text_to_image_and_image_variations_with_a_tiny_pipeline(colour_data, tmp_path):
    from builders import make_tiny_stable_diffusion

    from fgvc.generate.text_to_image import image_variations, prompt, text_to_image

    pipeline = make_tiny_stable_diffusion(tmp_path / "sd")
    cfg = load_config(None, [f"stable_diffusion.pipeline={pipeline}", "stable_diffusion.steps=2",
                             "stable_diffusion.size=16", "stable_diffusion.template=a photo of a {class_name} thing"])
    sd = cfg.stable_diffusion
    assert prompt(sd, "American_Bulldog") == "a photo of a American Bulldog thing"
    manifest = text_to_image(sd, ["red", "blue"], per_class=3, out=tmp_path / "t2i", seed=1, batch_size=2)
    images = load_synthetic(tmp_path / "t2i", ["blue", "red"])
    assert sorted(np.bincount(images.labels).tolist()) == [3, 3] and images.load(0).size == (16, 16)
    assert list(csv.DictReader(manifest.open()))[0]["generator"] == "text2image"
    real = load_data(DataConfig(name="image_folder", root=colour_data / "test", val_fraction=0)).train.subset([0, 4, 8])
    image_variations(sd, real, per_image=2, out=tmp_path / "i2i", seed=1)
    variations = load_synthetic(tmp_path / "i2i", real.class_names)
    assert variations.labels.tolist() == [l for l in real.labels.tolist() for _ in range(2)]  # labels kept
    with pytest.raises(Exception, match="template must contain"):
        load_config(None, ["stable_diffusion.template=a photo"])


def test_inception_extractor_from_a_local_weights_file(tmp_path, colour_data):
    import torch
    from torchvision.models import inception_v3

    from fgvc.generate.extractors import extractor_for

    torch.manual_seed(0)
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=True).state_dict(), tmp_path / "inception.pth")
    extractor = extractor_for("inception_v3", str(tmp_path / "inception.pth"))
    assert extractor.name == "inception_v3 (torchvision weights)" and extractor.size == 299
    real = load_data(DataConfig(name="image_folder", root=colour_data / "test", val_fraction=0)).train.subset([0, 1, 4])
    assert extractor(real).shape == (3, 2048)
    with pytest.raises(Exception, match="r.pth is not an Inception-v3 state dict"):
        import timm

        torch.save(timm.create_model("resnet10t").state_dict(), tmp_path / "r.pth")
        extractor_for("inception_v3", str(tmp_path / "r.pth"))


def fid_inception_weights(path, seed=0):
    """A random state dict in the layout of the TF-ported FID Inception-v3 (1008 classes, no aux head),
    He-scaled so activations stay finite through 90 layers."""
    import torch
    from torchvision.models import inception_v3

    torch.manual_seed(seed)
    state = inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False).state_dict()
    for key, value in state.items():
        if key.endswith("conv.weight"):
            value.normal_(0, (2 / value[0].numel()) ** 0.5)
    torch.save(state, path)
    return state


def test_standard_fid_inception_matches_torchmetrics(tmp_path):
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance

    from fgvc.generate.extractors import extractor_for

    state = fid_inception_weights(tmp_path / "weights-inception-2015-12-05-test.pth")
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)
    fake = np.clip(real + rng.normal(0, 50, real.shape), 0, 255).astype(np.uint8)
    as_list = lambda pixels: ImageList(["x"], np.zeros(len(pixels), int), pixels=pixels)  # noqa: E731
    extractor = extractor_for("inception_v3_tf", str(tmp_path / "weights-inception-2015-12-05-test.pth"))
    assert extractor.name == "inception_v3_tf" and extractor.weights.startswith("weights-inception-2015-12-05-test.pth (sha256 ")
    real_features, fake_features = extractor(as_list(real)), extractor(as_list(fake))
    assert real_features.shape == (6, 2048) and 0 < real_features.std() < 1e3
    ours = frechet_distance(real_features, fake_features)

    # torchmetrics' FID with the same weights file on the same 299 px uint8 images
    reference = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(tmp_path / "weights-inception-2015-12-05-test.pth"))
    to_299 = lambda pixels: torch.stack([extractor.transform(Image.fromarray(p)) for p in pixels])  # noqa: E731
    reference.update(to_299(real), real=True)
    reference.update(to_299(fake), real=False)
    assert ours > 0 and ours == pytest.approx(float(reference.compute()), rel=1e-3)

    # pytorch-fid's copy of the weights has no BatchNorm num_batches_tracked: same network, same features
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, tmp_path / "pt_inception.pth")
    assert np.allclose(extractor_for("inception_v3_tf", str(tmp_path / "pt_inception.pth"))(as_list(real)), real_features)


def test_standard_fid_inception_errors_name_the_file(tmp_path, monkeypatch):
    import timm
    import torch

    from fgvc.generate.extractors import extractor_for

    torch.save(timm.create_model("resnet10t").state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(FgvcError, match="resnet.pth is not the FID Inception-v3 state dict: Missing key"):
        extractor_for("inception_v3_tf", str(tmp_path / "resnet.pth"))
    with pytest.raises(FgvcError, match="weights file not found: .*nowhere.pth"):
        extractor_for("inception_v3_tf", str(tmp_path / "nowhere.pth"))
    import urllib.error

    import torch_fidelity.feature_extractor_inceptionv3 as fidelity

    def offline(url, **kwargs):  # what an offline machine gets, here also on a machine that is online
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(fidelity, "load_state_dict_from_url", offline)
    with pytest.raises(FgvcError, match="cannot download the FID Inception weights.*name resolution.*--weights"):
        extractor_for("inception_v3_tf")
