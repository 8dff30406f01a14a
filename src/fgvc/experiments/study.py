"""A study: arms trained over the same seeds, profiled, and compared seed by seed (paired verdicts).

A study folder holds one of two plans, and ``study(folder)`` runs whichever it finds:

- a folder of configs (``configs/study_cnn_vs_vit/``): every config is an arm, compared with the
  first; e.g. a CNN against a ViT with matched trainable parameters, reported with accuracy CIs,
  trainable parameters, training time per epoch and memory.
- a ``questions.yaml`` (``configs/study_tricks/``): one base config, many arms (each a few
  overrides), grouped into questions such as "which loss?", each naming a reference arm and the
  arms compared with it. Arms with the same base and overrides are one run group, trained once
  even when several questions use them.

Either way every arm is a repeat group over the study's seeds, finished seeds are reused, and a
study killed half-way goes on where it stopped.

STUDY/ (:class:`fgvc.runfolder.GroupFolder`)
  <config>/       a folder of configs: each config's repeat group (seed-N/ run folders, summary.json)
  arms/<arm>/     a questions plan: each arm's repeat group
  study.json      every arm (or question): metrics, time, parameters, and the paired verdicts
  tables.md       a questions plan: the same as Markdown tables
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Optional, Sequence

from pydantic import Field, ValidationError, model_validator

from fgvc.config import ExperimentConfig, load_config, read_yaml
from fgvc.config.section import Section
from fgvc.data import load_data
from fgvc.errors import ConfigError, FgvcError, RunStopped
from fgvc.evaluate.stats import few_runs_warning
from fgvc.experiments.compare import compare_groups
from fgvc.experiments.executors import LocalExecutor
from fgvc.experiments.groups import member_config, member_metrics
from fgvc.experiments.jobs import Executor, Log
from fgvc.experiments.plan_checks import check_comparison_plan
from fgvc.experiments.repeat import finish_repeat, plan_repeat
from fgvc.groupfolder import GroupFolder
from fgvc.models.assembly import build_network
from fgvc.models.strategies import count_parameters, opens_over_epochs, unfreeze_stage_for_epoch
from fgvc.models.summary import summarize
from fgvc.locks import file_lock, lock_beside, write_atomically

PLAN_FILE = "questions.yaml"  # a study folder with this file is a questions plan
DEFAULT_SEED_COUNT = 3  # a folder of configs without --seeds
DEFAULT_METRICS = ["top1", "f1_macro", "auroc_macro"]


def study(folder: Path, seeds: Optional[Sequence[int]] = None, out: Optional[Path] = None, split: str = "test",
          questions: Sequence[str] = (), overrides: Sequence[str] = (), log: Log = print,
          executor: Optional[Executor] = None) -> dict:
    """Run the study of ``folder`` (a questions.yaml, else every config in it) into ``out`` (default
    runs/<folder name>) over ``seeds`` (default: the plan's seeds, or 3 seeds from :func:`base_seed` for a
    folder of configs).
    ``questions``: only these questions of a questions.yaml; ``overrides``: key.path=value for every arm."""
    folder = Path(folder)
    out = study_folder(folder, out)
    warning = few_runs_warning(len(seeds)) if seeds is not None else None
    if warning:  # as repeat and crossval say it: two seeds make a paired verdict, not a reliable one
        log(f"warning: {warning}")
    if has_questions(folder):
        return questions_study(folder, seeds, out, split, questions, overrides, log, executor)
    if questions:
        raise FgvcError(f"--question needs a {PLAN_FILE} in {folder}")
    start = base_seed(folder, overrides)
    return configs_study(folder, seeds or [start + i for i in range(DEFAULT_SEED_COUNT)], out, split, overrides,
                         log, executor)


def study_folder(folder: Path, out: Optional[Path] = None) -> Path:
    """Where the study of ``folder`` writes: ``out``, by default runs/<folder name>."""
    return Path(out or Path("runs") / Path(folder).name)


def has_questions(folder: Path) -> bool:
    return (Path(folder) / PLAN_FILE).is_file()


def base_seed(folder: Path, overrides: Sequence[str] = ()) -> int:
    """Where a count of seeds starts for a study, as for repeat, sweep and search (the config's ``seed``):
    the plan's first seed (questions.yaml), else the ``seed`` of the folder's first config."""
    folder = Path(folder)
    if has_questions(folder):
        return load_plan(folder).seeds[0]
    configs = sorted(folder.glob("*.yaml"))
    if not configs:
        raise FgvcError(f"a study needs at least two configs in {folder}, found 0")
    return load_config(configs[0], list(overrides)).seed


def profile(cfg: ExperimentConfig, num_classes: int) -> dict:
    """Trainable / total parameters and memory of the config's model under its strategy.

    A strategy that opens over the epochs (gradual unfreezing) is profiled at its last epoch, where it
    trains most (and needs most memory); ``trainable_params_at_start`` says what it trains first.
    """
    model, _ = build_network(cfg, num_classes, pretrained=False)
    start = {}
    if opens_over_epochs(cfg.strategy):
        start = {"trainable_params_at_start": count_parameters(model)[1]}
        unfreeze_stage_for_epoch(model, cfg.strategy, cfg.train.epochs - 1)
    s = summarize(model, cfg.model.name, cfg.strategy.name, cfg.optim.name, batch_size=min(cfg.train.batch_size, 8),
                  image_size=cfg.data.transforms.crop)
    return {"total_params": s.total_params, "trainable_params": s.trainable_params,
            "param_grad_optimizer_bytes": s.param_bytes + s.grad_bytes + s.optimizer_bytes,
            "activation_bytes_per_image": (s.activation_bytes or 0) // max(1, s.batch_size), **start}


# -- a folder of configs ----------------------------------------------------------------------------
def configs_study(folder: Path, seeds: Sequence[int], out: Path, split: str = "test", overrides: Sequence[str] = (),
                  log: Log = print, executor: Optional[Executor] = None) -> dict:
    """Every config of ``folder`` over ``seeds``; all arms' runs go to ``executor`` at once."""
    configs = sorted(Path(folder).glob("*.yaml"))
    if len(configs) < 2:
        raise FgvcError(f"a study needs at least two configs in {folder}, found {len(configs)}")
    cfgs = {path: load_config(path, list(overrides)) for path in configs}
    check_comparison_plan(next(iter(cfgs.values())), seeds, split, "fgvc study")
    planned = {path: plan_repeat(cfg, seeds, out / path.stem, label=path.stem)[1] for path, cfg in cfgs.items()}
    (executor or LocalExecutor()).run([job for jobs in planned.values() for job in jobs], log=log)
    arms = []
    for path, cfg in cfgs.items():
        summary = finish_repeat(out / path.stem, planned[path])
        members = member_metrics(out / path.stem)
        per_epoch = [m["train_seconds"] / max(1, m.get("epochs") or cfg.train.epochs) for m in members.values()]
        arms.append({
            "name": path.stem, "config": str(path), "group": str(out / path.stem),
            "metrics": summary["metrics"].get(split, {}),
            "seconds_per_epoch": sum(per_epoch) / len(per_epoch) if per_epoch else None,
            **profile(cfg, load_data(cfg.data).num_classes),
        })
    rows = compare_groups([Path(a["group"]) for a in arms], split)
    result = {"study": str(folder), "seeds": list(seeds), "split": split, "arms": arms,
              "comparisons": [{"a": a, "b": b, **c.to_dict(), "verdict": v} for a, b, c, v in rows]}
    out.mkdir(parents=True, exist_ok=True)
    GroupFolder(out).study_file.write_text(json.dumps(result, indent=2))
    return result


# -- a questions.yaml ---------------------------------------------------------------------------------
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


class QuestionPlan(Section):
    """questions.yaml."""

    base: str = Field("base.yaml", description="the base config (relative to the plan)")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS))
    questions: list[Question]


def load_plan(folder: Path) -> QuestionPlan:
    path = Path(folder) / PLAN_FILE
    try:
        plan = QuestionPlan.model_validate(read_yaml(path))
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


def arm_config(folder: Path, plan: QuestionPlan, question: Question, overrides: Sequence[str],
               extra: Sequence[str] = ()) -> ExperimentConfig:
    base = load_config(Path(folder) / (question.base or plan.base), list(extra))
    try:
        return member_config(base, list(overrides))
    except FgvcError as exc:
        raise ConfigError(f"{Path(folder) / PLAN_FILE}: question {question.name}: {exc}") from None


def _arm_result(group: Path, summary: dict, name: str, overrides: Sequence[str], cfg: ExperimentConfig, split: str,
                metrics: Sequence[str], profiled: bool) -> dict:
    finished = {n: m for n, m in member_metrics(group).items() if n in summary["members"]}
    seconds = [m["train_seconds"] for m in finished.values() if "train_seconds" in m]
    result = {
        "arm": name, "overrides": list(overrides), "group": str(group), "seeds": len(finished),
        "metrics": {k: v for k, v in summary["metrics"].get(split, {}).items() if k in metrics},
        "train_seconds": sum(seconds) / len(seconds) if seconds else None,
    }
    if profiled:
        result.update(profile(cfg, load_data(cfg.data).num_classes))
        result["memory_bytes"] = (result["param_grad_optimizer_bytes"]
                                  + result["activation_bytes_per_image"] * cfg.train.batch_size)
    return result


def run_question(folder: Path, plan: QuestionPlan, question: Question, out: Path, seeds: Sequence[int],
                 split: str = "test", extra: Sequence[str] = (), log: Log = print,
                 executor: Optional[Executor] = None) -> dict:
    """Train (or reuse) every arm of one question over ``seeds`` and compare each with the reference.
    All the question's runs go to ``executor`` at once."""
    order = [question.reference] + [a for a in question.arms if a != question.reference]
    base = question.base or plan.base
    cfgs, groups, jobs = {}, {}, []
    for name in order:
        cfgs[name] = arm_config(folder, plan, question, question.arms[name], extra)
        arm_dir = GroupFolder(out).arms_dir / arm_dir_name(base, question.arms[name])
        groups[name], arm_jobs = plan_repeat(cfgs[name], seeds, arm_dir, label=f"{question.name}: {name}")
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


def questions_study(folder: Path, seeds: Optional[Sequence[int]], out: Path, split: str = "test",
                    only: Sequence[str] = (), extra: Sequence[str] = (), log: Log = print,
                    executor: Optional[Executor] = None) -> dict:
    """Every question of ``folder/questions.yaml`` (or those named in ``only``), in the plan's order.

    study.json and tables.md are rewritten after each question, so a long study shows its finished
    questions while the rest still run. A question that fails is recorded with its error and the
    study goes on; a rerun retries it (its finished seeds are kept).
    """
    from fgvc.report.tables import study_markdown

    plan = load_plan(folder)
    known = [q.name for q in plan.questions]
    unknown = [n for n in only if n not in known]
    if unknown:
        raise FgvcError(f"no question {unknown[0]!r} in {folder / PLAN_FILE}; questions: {', '.join(known)}")
    for question in plan.questions:  # every arm's config is checked before the first run starts
        for overrides in question.arms.values():
            arm_config(folder, plan, question, overrides, extra)
    seeds = list(seeds or plan.seeds)
    first = plan.questions[0]
    check_comparison_plan(arm_config(folder, plan, first, first.arms[first.reference], extra), seeds, split,
                          "fgvc study")
    out.mkdir(parents=True, exist_ok=True)
    header = {"study": str(folder), "seeds": seeds, "split": split}
    result: dict = {**header, "questions": {}}
    for question in plan.questions:
        if only and question.name not in only:
            continue
        try:
            entry = run_question(folder, plan, question, out, seeds, split, extra, log, executor)
        except RunStopped:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed question must not end a study of many hours
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            log(f"question {question.name} failed, going on with the next one: {message}")
            entry = {"name": question.name, "title": question.title, "error": message}
        # the same root the LaTeX export passes: arm groups recorded relative to another directory are found
        result = record_question(out, header, known, entry, lambda r: study_markdown(r, out))
    return result


def record_question(out: Path, header: dict, known: Sequence[str], entry: dict,
                    render: Callable[[dict], str]) -> dict:
    """study.json with one question's ``entry`` added to what is on disk now, and its
    tables.md: read, merged and replaced under a lock, so two studies on one folder (other questions,
    started together) keep each other's entries. Questions no longer in the plan (``known``) drop out."""
    files = GroupFolder(out)
    with file_lock(lock_beside(files.study_file)):
        try:
            questions = dict(json.loads(files.study_file.read_text()).get("questions", {}))
        except (OSError, ValueError, AttributeError):
            questions = {}
        questions[entry["name"]] = entry
        result = {**header, "questions": {q: questions[q] for q in known if q in questions}}
        write_atomically(files.study_file, json.dumps(result, indent=2))
        write_atomically(files.tables_file, render(result))
    return result
