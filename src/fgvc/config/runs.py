"""Around a run: how it is evaluated, where it is written, where a group's runs execute."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, field_validator

from fgvc.config.section import Section


class EvalConfig(Section):
    batch_size: int = Field(64, ge=1, description="images per batch when evaluating and predicting")
    split: Literal["val", "test"] = Field("test", description="split fgvc eval reports by default")
    top_k: int = Field(5, ge=1, description="k of the top-k accuracy reported beside top-1")
    tta: list[Literal["flip", "d4", "crops"]] = Field(
        default_factory=list, description="flip: + mirror; d4: the 8 flips and 90-degree rotations; crops: five crops")


class OutputConfig(Section):
    dir: Path = Field(Path("runs"), description="folder that run folders are written into")
    name: Optional[str] = Field(None, description="run folder name, one folder inside output.dir (no / or ..); "
                                                  "null: the config file's name")

    @field_validator("name")
    @classmethod
    def _one_folder(cls, name: Optional[str]) -> Optional[str]:
        """The run folder stays inside output.dir: a name like ../../x once wrote a whole run elsewhere."""
        if name is None:
            return name
        if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise ValueError("not a single folder name (no /, \\, . or ..): it names the run folder inside "
                             "output.dir; put any other folders into output.dir")
        return name


class ExecutorConfig(Section):
    """Where a group's runs (repeat, sweep, crossval, study, search) train; never what they compute.
    The CLI's --executor / --address / --cpus-per-trial / --gpus-per-trial and the environment
    (FGVC_EXECUTOR, FGVC_RAY_ADDRESS) override it."""

    name: Literal["local", "ray"] = Field("local", description="local: one run after another in this process; "
                                                              "ray: each run a task on a Ray cluster")
    address: Optional[str] = Field(None, description="a running Ray cluster (e.g. ray://head:10001 or auto); "
                                                     "null: start a local one")
    cpus_per_trial: float = Field(1.0, gt=0, description="CPUs per run; its torch thread count")
    gpus_per_trial: float = Field(0.0, ge=0, description="Ray: GPUs reserved per run (fractions share a GPU)")
    max_retries: int = Field(3, ge=0, description="times a run whose worker died is started again (it resumes)")
