"""fgvc pipeline plan: measured, balanced pipeline stages."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from fgvc.cli._common import ConfigArg, SetOption, app, console, friendly_errors
from fgvc.config import load_config

pipeline_app = typer.Typer(help="Pipeline parallelism: cut a model into balanced stages.", no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")


@pipeline_app.command("plan")
@friendly_errors
def plan_command(
    config: Path = ConfigArg,
    set_: List[str] = SetOption,
    stages: Optional[int] = typer.Option(None, min=1, help="stages (default train.pipeline.stages)"),
    microbatches: Optional[int] = typer.Option(None, min=1, help="micro-batches (default train.pipeline.microbatches)"),
    repeats: int = typer.Option(3, min=1, help="timed repetitions per block (the median counts)"),
    out: Optional[Path] = typer.Option(None, help="folder for plan.json and plan.png (default RUN_DIR-pipeline)"),
) -> None:
    """Measure each block's time and memory; print the equal and the balanced split with predictions."""
    from fgvc.data import load_data
    from fgvc.train.pipeline_plan import plan_pipeline, write_plan

    cfg = load_config(config, set_)
    plan = plan_pipeline(cfg, stages, microbatches, repeats, load_data(cfg.data).num_classes)
    console.print(f"{plan['model']} at {plan['image_size']} px: {len(plan['blocks'])} blocks, batch {plan['batch_size']} "
                  f"= {plan['microbatches']} x {plan['microbatch']}, {plan['stages']} stages, {plan['schedule']}, "
                  f"{plan['threads']} threads; bubble {plan['balanced']['bubble_fraction']:.0%} of each step")
    for key in ("equal", "balanced"):
        split = plan[key]
        table = Table(title=f"{key} split (cuts {split['cuts']})")
        for column in ("stage", "blocks", "ms / micro-batch", "memory MB", "sends KB"):
            table.add_column(column, justify="left" if column == "blocks" else "right")
        for row in split["stages"]:
            mark = " <- bottleneck" if row["stage"] == split["bottleneck_stage"] else ""
            table.add_row(str(row["stage"]), f"{row['blocks'][0]} .. {row['blocks'][-1]} ({len(row['blocks'])})",
                          f"{1000 * row['seconds']:.1f}{mark}", f"{row['memory_bytes'] / 1e6:.1f}",
                          f"{row['sends_bytes'] / 1e3:.0f}")
        console.print(table)
        console.print(f"  predicted {split['predicted_images_per_s']:.1f} img/s "
                      f"({split['predicted_speedup']:.2f}x one process doing every block)")
    gain = plan["balanced"]["predicted_images_per_s"] / max(plan["equal"]["predicted_images_per_s"], 1e-12)
    memory = plan["gpipe_vs_1f1b_peak_memory_bytes"]
    console.print(f"balanced / equal: {gain:.2f}x predicted; peak stage memory gpipe {memory['gpipe'] / 1e6:.1f} MB, "
                  f"1f1b {memory['1f1b'] / 1e6:.1f} MB")
    written = write_plan(plan, out or Path(f"{cfg.run_dir}-pipeline"))
    console.print(f"wrote {written[0]} and {written[1]}")
