"""train.keep_cpu_memory: freed tensor memory is reused by the next allocation instead of being faulted in
again page by page (glibc), and a run sets it from its config."""

import resource
import subprocess
import sys

import pytest

from fgvc.config import load_config
from fgvc.cpu_memory import _glibc
from fgvc.train.run import train

pytestmark = pytest.mark.skipif(_glibc() is None, reason="mallopt is glibc's")

# a fresh process: a training step's worth of large tensors (a 92 MiB conv output, above glibc's largest
# mmap threshold of 32 MiB, and its gradients), six times; the minor page faults of the last step
LAST_STEP_FAULTS = """
import resource, sys, torch
from fgvc.cpu_memory import keep_cpu_memory
assert keep_cpu_memory(sys.argv[1] == "keep")
torch.set_num_threads(1)
conv, images = torch.nn.Conv2d(3, 32, 3, padding=1), torch.randn(8, 3, 300, 300)
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    conv(images).relu().sum().backward()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(faults)
"""


def last_step_faults(setting: str) -> int:
    done = subprocess.run([sys.executable, "-c", LAST_STEP_FAULTS, setting], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_a_step_reuses_the_memory_the_step_before_freed_only_when_kept():
    output_pages = 8 * 32 * 300 * 300 * 4 // resource.getpagesize()
    assert last_step_faults("default") > output_pages  # fresh mmaps: every page faulted in again, every step
    assert last_step_faults("keep") < output_pages // 20  # the blocks the step before freed, reused


def test_a_run_sets_it_from_its_config(tiny_overrides, monkeypatch):
    import fgvc.cpu_memory
    import fgvc.train.run

    said = []
    monkeypatch.setattr(fgvc.train.run, "keep_cpu_memory", lambda keep: said.append(keep) or fgvc.cpu_memory.keep_cpu_memory(keep))
    train(load_config(None, tiny_overrides + ["train.epochs=1", "train.keep_cpu_memory=false"]), progress=False)
    train(load_config(None, tiny_overrides + ["train.epochs=1", "output.name=kept"]), progress=False)
    assert said == [False, True]
