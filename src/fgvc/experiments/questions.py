"""A question study: one base config, many arms (each a few overrides), grouped into questions.

``configs/study_tricks/questions.yaml`` lists questions such as "which loss?"; each names a
reference arm and the arms compared with it. An arm is the base config plus overrides, trained
over the same seeds as every other arm (so comparisons are paired). Arms with the same base and
overrides are one run group, trained once even when several questions use them, and finished
seeds are reused, so a study killed half-way goes on where it stopped.

STUDY/
  arms/<arm>/     a repeat group (seed-N/ run folders, summary.json)
  study.json      every question: its arms' metrics, time, parameters, and the paired verdicts
  tables.md       the same as Markdown tables
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Optional, Sequence

from pydantic import Field, ValidationError, model_validator

from fgvc.config import ExperimentConfig, load_config, read_yaml
from fgvc.config.section import Section
from fgvc.errors import ConfigError, FgvcError, RunStopped
from fgvc.experiments.compare import compare_groups
from fgvc.experiments.groups import member_config, member_metrics
from fgvc.experiments.executors import Executor, LocalExecutor
from fgvc.experiments.repeat import finish_repeat, plan_repeat

PLAN_FILE = "questions.yaml"
DEFAULT_METRICS = ["top1", "f1_macro", "auroc_macro"]


class Question(Section):
    """One question: a reference arm and the arms compared with it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    title: str
    reference: str = Field(description="the arm every other arm of this question is compared with")
    arms: dict[str, list[str]] = Field(description="arm name -> overrides of the base config (key.path=value)")
    base: Optional[str] = Field(None, description="another base config for this question (relative to the plan)")
    profile: bool = Field(False, description="also report trainable parameters and estimated memory")

    @model_validator(mode="after")
    def _reference_is_an_arm(self) -> "Question":
        if self.reference not in self.arms:
            raise ValueError(f"question {self.name}: reference {self.reference!r} is not one of its arms {list(self.arms)}")
        if len(self.arms) < 2:
            raise ValueError(f"question {self.name}: needs at least two arms")
        return self


class StudyPlan(Section):
    base: str = Field("base.yaml", description="the base config (relative to the plan)")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS))
    questions: list[Question]


def is_question_study(folder: Path) -> bool:
    return (Path(folder) / PLAN_FILE).is_file()


def load_plan(folder: Path) -> StudyPlan:
    path = Path(folder) / PLAN_FILE
    try:
        plan = StudyPlan.model_validate(read_yaml(path))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
    names = [q.name for q in plan.questions]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: question names repeat: {names}")
    return plan


def arm_dir_name(base: str, overrides: Sequence[str]) -> str:
    """A stable folder name for base + overrides: the same arm in two questions is one group."""
    text = "+".join([Path(base).stem, *sorted(overrides)])
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", text)


def arm_config(folder: Path, plan: StudyPlan, question: Question, overrides: Sequence[str],
               extra: Sequence[str] = ()) -> ExperimentConfig:
    base = load_config(Path(folder) / (question.base or plan.base), list(extra))
    try:
        return member_config(base, list(overrides))
    except FgvcError as exc:
        raise ConfigError(f"{Path(folder) / PLAN_FILE}: question {question.name}: {exc}") from None


def _arm_result(group: Path, summary: dict, name: str, overrides: Sequence[str], cfg: ExperimentConfig, split: str,
                metrics: Sequence[str], profile: bool) -> dict:
    finished = {n: m for n, m in member_metrics(group).items() if n in summary["members"]}
    seconds = [m["train_seconds"] for m in finished.values() if "train_seconds" in m]
    result = {
        "arm": name, "overrides": list(overrides), "group": str(group), "seeds": len(finished),
        "metrics": {k: v for k, v in summary["metrics"].get(split, {}).items() if k in metrics},
        "train_seconds": sum(seconds) / len(seconds) if seconds else None,
    }
    if profile:
        from fgvc.data import load_data
        from fgvc.experiments.study import profile as profile_arm

        result.update(profile_arm(cfg, load_data(cfg.data).num_classes))
        result["memory_bytes"] = (result["param_grad_optimizer_bytes"]
                                  + result["activation_bytes_per_image"] * cfg.train.batch_size)
    return result


def run_question(folder: Path, plan: StudyPlan, question: Question, out: Path, seeds: Sequence[int],
                 split: str = "test", extra: Sequence[str] = (), log: Callable[[str], None] = print,
                 executor: Optional[Executor] = None) -> dict:
    """Train (or reuse) every arm of one question over ``seeds`` and compare each with the reference.
    All the question's runs go to ``executor`` at once."""
    order = [question.reference] + [a for a in question.arms if a != question.reference]
    base = question.base or plan.base
    cfgs, groups, jobs = {}, {}, []
    for name in order:
        cfgs[name] = arm_config(folder, plan, question, question.arms[name], extra)
        groups[name], arm_jobs = plan_repeat(cfgs[name], seeds, out / "arms" / arm_dir_name(base, question.arms[name]),
                                             label=f"{question.name}: {name}")
        # an arm's group may hold more seeds (another question's, a 10-seed repeat of the reference):
        # every arm of a question is trained and summarised over the question's seeds only
        jobs.append([job for job in arm_jobs if job.config.seed in set(seeds)])
    (executor or LocalExecutor()).run([job for arm_jobs in jobs for job in arm_jobs], log=log)
    arms = []
    for name, arm_jobs in zip(order, jobs):
        summary = finish_repeat(groups[name], arm_jobs)
        arms.append(_arm_result(groups[name], summary, name, question.arms[name], cfgs[name], split, plan.metrics,
                                question.profile))
    groups = list(groups.values())
    names = {str(g.name): a["arm"] for g, a in zip(groups, arms)}
    comparisons = []
    for a, b, comparison, _ in compare_groups(groups, split, plan.metrics, keys=list(seeds)):
        comparisons.append({"a": names[a], "b": names[b], **comparison.to_dict()})
    return {"name": question.name, "title": question.title, "reference": question.reference,
            "split": split, "seeds": list(seeds), "arms": arms, "comparisons": comparisons}


def run_study(folder: Path, seeds: Optional[Sequence[int]] = None, out: Optional[Path] = None, split: str = "test",
              only: Optional[Sequence[str]] = None, extra: Sequence[str] = (),
              log: Callable[[str], None] = print, executor: Optional[Executor] = None) -> dict:
    """Every question of ``folder/questions.yaml`` (or those named in ``only``), in the plan's order.

    study.json and tables.md are rewritten after each question, so a long study shows its finished
    questions while the rest still run. A question that fails is recorded with its error and the
    study goes on; a rerun retries it (its finished seeds are kept).
    """
    from fgvc.report.tables import study_markdown

    folder = Path(folder)
    plan = load_plan(folder)
    known = [q.name for q in plan.questions]
    unknown = [n for n in (only or []) if n not in known]
    if unknown:
        raise FgvcError(f"no question {unknown[0]!r} in {folder / PLAN_FILE}; questions: {', '.join(known)}")
    for question in plan.questions:  # every arm's config is checked before the first run starts
        for overrides in question.arms.values():
            arm_config(folder, plan, question, overrides, extra)
    seeds = list(seeds or plan.seeds)
    out = Path(out or Path("runs") / folder.name)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "study.json"
    previous = json.loads(path.read_text())["questions"] if path.is_file() else {}
    result = {"study": str(folder), "seeds": seeds, "split": split, "questions": dict(previous)}
    for question in plan.questions:
        if only and question.name not in only:
            continue
        try:
            result["questions"][question.name] = run_question(folder, plan, question, out, seeds, split, extra, log,
                                                                 executor)
        except RunStopped:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed question must not end a study of many hours
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            log(f"question {question.name} failed, going on with the next one: {message}")
            result["questions"][question.name] = {"name": question.name, "title": question.title, "error": message}
        result["questions"] = {q: result["questions"][q] for q in known if q in result["questions"]}
        path.write_text(json.dumps(result, indent=2))
        (out / "tables.md").write_text(study_markdown(result))
    return result
