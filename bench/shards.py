"""Streamed shards against the folder loader, in one process (no model): images/s of fgvc's training
loader reading the source (files or in-memory pixels), the packed LitData shards from a local folder,
and the same shards from nginx on localhost; then the peak disk use of the shard cache during one
whole epoch streamed over nginx, against data.cache_limit (polled every 10 ms). Arms alternate over --repeats rounds;
the median counts.

    python bench/shards.py                                     # ELPV (the embedded default), 2 workers
    python bench/shards.py --data fashion_mnist --images 4000 --size 32 --cache-limit 2MB
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path


def serve(folder: Path, work: Path) -> tuple[subprocess.Popen, str]:
    """nginx serving ``folder`` on a free localhost port (own config under ``work``)."""
    import os

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp = " ".join(f"{k}_temp_path {work / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;" if os.geteuid() == 0 else ""
    (work / "nginx.conf").write_text(f"{user} daemon off; worker_processes 2; pid {work / 'pid'}; error_log {work / 'log'};"
                                     f"events {{ worker_connections 256; }} http {{ access_log off; {temp} "
                                     f"server {{ listen 127.0.0.1:{port}; root {folder}; }} }}")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    process = subprocess.Popen([nginx, "-c", str(work / "nginx.conf"), "-p", str(work), "-e", str(work / "log")])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return process, f"http://127.0.0.1:{port}"


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


class PeakDisk:
    """The largest size ``folder`` reached while running (polled every 10 ms)."""

    def __init__(self, folder: Path):
        self.folder, self.peak, self._stop = folder, 0, threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            if self.folder.exists():
                self.peak = max(self.peak, folder_bytes(self.folder))
            time.sleep(0.01)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="elpv", help="data.name of the source to pack (elpv, fashion_mnist, ...)")
    parser.add_argument("--images", type=int, default=1000, help="training images read per arm and round")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-limit", default="2MB")
    args = parser.parse_args()

    from fgvc.config import load_config
    from fgvc.config.data import disk_bytes
    from fgvc.data import load_data
    from fgvc.data.shards.pack import pack_data
    from fgvc.train.engines.lightning import build_datamodule

    work = Path(tempfile.mkdtemp(prefix="fgvc-bench-shards-"))
    base = [f"data.name={args.data}", f"data.transforms.resize={args.size}", f"data.transforms.crop={args.size}",
            f"train.batch_size={args.batch}", f"data.num_workers={args.workers}", "model.name=resnet10t",
            "model.pretrained=false", f"data.cache_dir={work / 'cache'}"]
    source_cfg = load_config(None, base)
    start = time.perf_counter()
    manifest = pack_data(source_cfg.data, work / "site" / "packed")
    packed = folder_bytes(work / "site" / "packed")
    print(f"{args.data}: packed {sum(manifest.splits.values())} images ({manifest.splits}) into "
          f"{packed / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s")
    (work / "nginx").mkdir()
    server, url = serve(work / "site", work / "nginx")
    shard_sets = [s for s in base if not s.startswith("data.name")] + ["data.name=shards",
                                                                      f"data.cache_limit={args.cache_limit}"]
    arms = {"folder": base, "shards (local)": shard_sets + [f"data.root={work / 'site' / 'packed'}"],
            "shards (nginx)": shard_sets + [f"data.root={url}/packed",
                                            f"data.cache_dir={work / 'remote-cache'}"]}
    rates: dict[str, list[float]] = {name: [] for name in arms}
    try:
        for _ in range(args.repeats):
            for name, sets in arms.items():
                cfg = load_config(None, sets)
                loader = build_datamodule(cfg, load_data(cfg.data)).train_dataloader()
                cache = Path(cfg.data.cache_dir) / "shards"
                with PeakDisk(cache) as disk:
                    start, seen = time.perf_counter(), 0
                    for images, _labels in loader:
                        seen += len(images)
                        if seen >= args.images:
                            break
                    rates[name].append(seen / (time.perf_counter() - start))
                del loader
        cfg = load_config(None, arms["shards (nginx)"])  # one whole epoch over nginx, its cache watched
        loader = build_datamodule(cfg, load_data(cfg.data)).train_dataloader()
        with PeakDisk(Path(cfg.data.cache_dir) / "shards") as disk:
            start = time.perf_counter()
            epoch = sum(len(images) for images, _labels in loader)
            epoch_s = time.perf_counter() - start
        peak = disk.peak
    finally:
        server.terminate()
        server.wait()
    folder = statistics.median(rates["folder"])
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:16s} {rate:8.0f} images/s  ({rate / folder:.2f}x the folder loader)")
    limit = disk_bytes(args.cache_limit)
    print(f"one epoch over nginx: {epoch} images in {epoch_s:.1f} s; shard cache: peak {peak / 1e3:.1f} kB on disk, "
          f"limit {limit / 1e6:.1f} MB, "
          f"packed set {packed / 1e6:.1f} MB: {'within' if peak <= limit else 'OVER'} the limit")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
