"""``train.keep_cpu_memory`` measured in one process: training steps with glibc's default allocation
(every block above the mmap threshold mapped afresh and faulted in page by page, then unmapped) against
freed blocks kept in the heap for the next step (:mod:`fgvc.cpu_memory`). Rounds alternate; each switch
back to the default returns what was kept (``malloc_trim``), so both start every round as they would in
their own process. Prints the median time per step, page faults per step and the ratio.

    python bench/cpu_memory.py                                 # Lite0 at 300 px, batch 16: ELPV's fine-tune
    python bench/cpu_memory.py --inference --batch 64          # eval / predict / the probe's feature pass
    python bench/cpu_memory.py --model resnet10t --size 128 --batch 32
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tf_efficientnet_lite0")
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4, help="timed steps a round, after one untimed")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of each setting")
    parser.add_argument("--inference", action="store_true", help="forward passes without gradients, not training steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    import timm

    from fgvc.cpu_memory import keep_cpu_memory

    model = timm.create_model(args.model, pretrained=False, num_classes=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images, labels = torch.randn(args.batch, 3, args.size, args.size), torch.randint(0, 2, (args.batch,))

    def step() -> None:
        if args.inference:
            with torch.inference_mode():
                model.eval()(images)
            return
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    times: dict[str, list[float]] = {"default": [], "kept": []}
    faults: dict[str, list[float]] = {"default": [], "kept": []}
    for _ in range(args.repeats):
        for setting in times:
            if not keep_cpu_memory(setting == "kept"):
                raise SystemExit("mallopt is glibc's: nothing to measure on this C library")
            step()  # the first step of a setting fills (or empties) the heap
            before, started = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
            for _ in range(args.steps):
                step()
            times[setting].append((time.perf_counter() - started) / args.steps)
            faults[setting].append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / args.steps)
    what = "forward passes" if args.inference else "training steps"
    print(f"{args.model} at {args.size} px, batch {args.batch}, {args.threads} threads, {args.steps} {what} x "
          f"{args.repeats} rounds each, alternating")
    for setting in times:
        print(f"  {setting:8s} {statistics.median(times[setting]):6.2f} s/step  "
              f"{statistics.median(faults[setting]):>11,.0f} page faults/step")
    ratio = statistics.median(times["default"]) / statistics.median(times["kept"])
    print(f"kept memory: {ratio:.2f}x the {what} per second of glibc's default")


if __name__ == "__main__":
    main()
