"""``fgvc report PATH --format latex``: the tables (booktabs) and figures (vector PDF) of a run, a repeat or
crossval group, a compare of groups, a sweep, a study, a search or an ensemble, and with ``paper`` a
minimal paper that compiles with pdflatex (article class, booktabs, siunitx, graphicx).

OUT/tables/<name>.tex    one float each, \\input by the paper
OUT/figures/<name>.pdf   3.3 in wide: one column of a two-column page
PAPER/main.tex           \\input's the tables and \\includegraphics the figures
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from fgvc.errors import FgvcError, ReportError
from fgvc.groupfolder import GroupFolder, require_same_task
from fgvc.report import latex, paper_figures
from fgvc.report.frames import groups_question, question_frame, summary_frame, values_frame
from fgvc.report.records import read_record
from fgvc.runfolder import RunFolder

EXPORT_DIR = "latex"  # PATH/latex/ unless --out says otherwise
TABLES, FIGURES, MAIN = "tables", "figures", "main.tex"


@dataclass
class Figure:
    path: Path
    caption: str  # LaTeX
    label: str


@dataclass
class Export:
    """What an export wrote: table files, figures with their captions, the paper (if any)."""

    out: Path
    title: str
    tables: list[Path] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    paper: Optional[Path] = None

    def table(self, stem: str, text: str) -> None:
        path = self.out / TABLES / f"{stem}.tex"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.tables.append(path)

    def figure_path(self, stem: str) -> Path:
        return self.out / FIGURES / f"{stem}.pdf"


def folder_kind(path: Path) -> str:
    """study, sweep, search, ensemble, group (repeat or crossval) or run: what ``path`` holds."""
    group = GroupFolder(path)
    for kind, marker in (("study", group.study_file), ("sweep", group.sweep_file), ("search", group.search_file),
                         ("ensemble", group.ensemble_file), ("group", group.summary_file),
                         ("run", RunFolder(path).metrics_file)):
        if marker.is_file():
            return kind
    raise FgvcError(f"{path} holds no {GroupFolder.STUDY}, {GroupFolder.SWEEP}, {GroupFolder.SEARCH}, "
                    f"{GroupFolder.ENSEMBLE}, {GroupFolder.SUMMARY} (a group) or {RunFolder.METRICS} (a run): "
                    "nothing to export")


def export_latex(paths: Sequence[Path], out: Optional[Path] = None, ci_brackets: bool = False,
                 paper: Optional[Path] = None, split: str = "test") -> Export:
    """Tables and figures of ``paths`` (one folder; several groups are a compare, each against the first)
    into ``out`` (default PATH/latex, or ``paper``), and a compilable paper in ``paper``."""
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_dir():
            raise FgvcError(f"not found: {path}")
    out = Path(out or paper or paths[0] / EXPORT_DIR)
    if len(paths) > 1:
        missing = [p for p in paths if not GroupFolder(p).summary_file.is_file()]
        if missing:
            raise FgvcError(f"{missing[0]} is not a run group (no {GroupFolder.SUMMARY}): a compare takes the "
                            "folders of fgvc repeat, crossval or sweep cells")
        require_same_task(paths[0], paths[1:])  # groups of other tasks: a difference would mean nothing
        export = Export(out, "Comparison of " + ", ".join(p.name for p in paths))
    else:
        kind = folder_kind(paths[0])
        export = Export(out, f"{kind}: {paths[0].name}")
    with written_or_one_line(out, paper):
        if len(paths) > 1:
            _compare(export, groups_question(paths, split, title=export.title), ci_brackets, "compare")
        else:
            EXPORTERS[kind](export, paths[0], ci_brackets, split)
        if paper is not None:
            export.paper = write_paper(export, Path(paper))
    return export


@contextlib.contextmanager
def written_or_one_line(out: Path, paper: Optional[Path]) -> Iterator[None]:
    """An OSError (a read-only folder, a path under a file, a full disk) as one line naming the file:
    one the export writes (under ``out`` or ``paper``), or one it reads."""
    try:
        yield
    except OSError as exc:
        name = Path(exc.filename) if exc.filename else out
        targets = [Path(out).absolute()] + ([Path(paper).absolute()] if paper is not None else [])
        if any(t == name.absolute() or t in name.absolute().parents or name.absolute() in t.parents
               for t in targets):
            raise ReportError(f"cannot write {name}: {exc.strerror or exc}; choose an --out / --paper folder you "
                              "can write to") from None
        raise ReportError(f"cannot read {name}: {exc.strerror or exc}") from None


# -- one exporter per folder kind -------------------------------------------------------------------
def _compare(export: Export, question: dict, ci_brackets: bool, prefix: str, root: Optional[Path] = None) -> None:
    frame = question_frame(question, root=root)
    for stem, text in latex.question_tables(frame, ci_brackets, prefix).items():
        export.table(stem, text)
    if (~frame["reference"]).any():
        stem = latex.label_key(prefix, question.get("name") or "forest").replace(":", "-") + "-forest"
        paper_figures.forest_pdf(frame, export.figure_path(stem))
        export.figures.append(Figure(export.figure_path(stem),
                                     f"{latex.latex_escape(frame.attrs['title'])}: each arm minus "
                                     f"{latex.latex_escape(frame.attrs['reference'])}, paired by seed, with the 95~\\% "
                                     "CI; a filled dot is significant at 5~\\%.", f"fig:{stem}"))


def _study(export: Export, path: Path, ci_brackets: bool, split: str) -> None:
    result = read_record(GroupFolder(path).study_file, "run the study again to rewrite it (finished arms are reused)")
    export.title = f"Results of the study {Path(result['study']).name}"
    if "questions" in result:
        answered = [q for q in result["questions"].values() if "error" not in q]
        if not answered:
            raise FgvcError(f"{path}: no question of the study has finished yet")
        for question in answered:
            _compare(export, question, ci_brackets, Path(result["study"]).name, root=path)
        return
    arms = result["arms"]  # a study of configs: every config compared with the first
    groups = [_found(Path(a["group"]), path) for a in arms]
    question = groups_question(groups, result["split"], title=export.title, names=[a["name"] for a in arms])
    _compare(export, question, ci_brackets, Path(result["study"]).name)


def _found(group: Path, root: Path) -> Path:
    """A group recorded relative to the working directory of its writer, else found by name under ``root``."""
    return group if GroupFolder(group).summary_file.is_file() else root / group.name


def _sweep(export: Export, path: Path, ci_brackets: bool, split: str) -> None:
    result = read_record(GroupFolder(path).sweep_file)
    cells = [_found(Path(c), path) for c in result["cells"]]
    title = "Sweep of " + ", ".join(result["grid"])
    _compare(export, groups_question(cells, split, title=title), ci_brackets, f"sweep-{path.name}")


def _search(export: Export, path: Path, ci_brackets: bool, split: str) -> None:
    folder = GroupFolder(path)
    record = read_record(folder.search_file)
    if record.get("best"):
        import pandas as pd

        params = pd.DataFrame({"value": [latex.latex_escape(v) for v in record["best"]["params"].values()]},
                              index=list(record["best"]["params"]))
        params.index.name = "key"
        caption = (f"The best of {len(record['trials'])} trials of the search {latex.latex_escape(path.name)}, "
                   f"chosen by validation {latex.latex_escape(record['metric'])} ({record['mode']}).")
        export.table("search-best", latex.render(params, "ll", caption, f"tab:{latex.label_key('search', path.name)}"))
    if folder.confirm_start.is_dir() and GroupFolder(folder.confirm_best).summary_file.is_file():
        question = groups_question([folder.confirm_start, folder.confirm_best], split, names=["start", "best"],
                                   title=f"Search {path.name}: the best trial against the start")
        _compare(export, question, ci_brackets, f"search-{path.name}")


def _group(export: Export, path: Path, ci_brackets: bool, split: str) -> None:
    group = GroupFolder(path)
    summary = read_record(group.summary_file)
    frame = summary_frame(summary)
    unit = "folds" if summary["kind"] == "crossval" else "seeds"
    keys = [summary["keys"][n] for n in summary["members"]]
    confidence = next((d.get("confidence", 0.95) for t in summary["metrics"].values() for d in t.values()), 0.95)
    percent = f"{round(100 * confidence)}~\\%"
    shown = f"mean [bounds of the {percent} CI]" if ci_brackets else f"mean $\\pm$ half the width of the {percent} CI"
    methods = ", ".join(latex.latex_escape(m) for m in frame.attrs["ci_methods"])
    caption = (f"{latex.latex_escape(path.name)}: {summary['kind']} over {latex.seeds_text(keys, unit)}; {shown} "
               f"over the {unit}" + (f" ({methods})" if methods else "") + "; one row per split, nothing compared."
               + (f" Warning: {latex.latex_escape(summary['warning'])}." if summary.get("warning") else ""))
    stem = latex.label_key("group", path.name).replace(":", "-")
    export.table(stem, latex.value_table(frame, frame.attrs["metrics"], caption, f"tab:{stem}", ci_brackets, "split"))
    members = {n: group.member(n) for n in summary["members"]}
    histories = {n: m.history() for n, m in members.items() if m.history()}
    if histories:
        out = paper_figures.curves_pdf(histories, export.figure_path(f"{stem}-curves"))
        export.figures.append(Figure(out, f"{latex.latex_escape(path.name)}: validation loss and top-1 of each "
                                          f"of the {len(histories)} members per epoch.", f"fig:{stem}-curves"))
    _pooled_figures(export, stem, path.name, list(members.values()), split)


def _pooled_figures(export: Export, stem: str, name: str, runs: list[RunFolder], split: str) -> None:
    """Confusion matrix and reliability diagram of ``split``, pooled over ``runs`` (one run: its own)."""
    finished = [r for r in runs if r.metrics_file.is_file() and split in r.metrics()]
    if not finished:
        return
    matrices = [np.asarray(r.metrics()[split]["confusion_matrix"]) for r in finished
                if "confusion_matrix" in r.metrics()[split]]
    pooled = f", summed over {len(finished)} runs" if len(finished) > 1 else ""
    safe = latex.latex_escape(name)
    if matrices:
        names = finished[0].class_names() or [str(i) for i in range(len(matrices[0]))]
        out = paper_figures.confusion_pdf(sum(matrices), names, export.figure_path(f"{stem}-confusion"), split)
        export.figures.append(Figure(out, f"{safe}: confusion matrix on the {split} split{pooled}, each row "
                                          "normalised to the true class.", f"fig:{stem}-confusion"))
    rows = [p for r in finished if r.predictions_file(split).is_file() for p in r.predictions(split)]
    if rows:
        out = paper_figures.reliability_pdf([p.confidence for p in rows], [p.right for p in rows],
                                            export.figure_path(f"{stem}-reliability"), split)
        pooled = pooled.replace("summed", "pooled")
        export.figures.append(Figure(out, f"{safe}: reliability diagram on the {split} split{pooled}"
                                          " (15 bins of top-1 probability).", f"fig:{stem}-reliability"))


def _run(export: Export, path: Path, ci_brackets: bool, split: str) -> None:
    folder = RunFolder(path)
    metrics = folder.metrics()
    frame = values_frame({s: metrics[s] for s in ("val", "test") if s in metrics})
    stem = latex.label_key("run", path.name).replace(":", "-")
    caption = (f"{latex.latex_escape(path.name)}: one run (seed {metrics.get('seed', '?')}), one row per split; a "
               "single run has no confidence interval: repeat it over seeds (fgvc repeat) for one.")
    export.table(stem, latex.value_table(frame, frame.attrs["metrics"], caption, f"tab:{stem}", ci_brackets, "split"))
    if folder.history():
        out = paper_figures.curves_pdf({path.name: folder.history()}, export.figure_path(f"{stem}-curves"))
        export.figures.append(Figure(out, f"{latex.latex_escape(path.name)}: training and validation loss and top-1 "
                                          "per epoch.", f"fig:{stem}-curves"))
    _pooled_figures(export, stem, path.name, [folder], split if split in metrics else "val")


def _ensemble(export: Export, path: Path, ci_brackets: bool, split: str) -> None:
    folder = GroupFolder(path)
    record = read_record(folder.ensemble_file)
    rows = {Path(m["run"]).name: m for m in record["members"]}
    rows["members' mean"] = record["members_mean"]
    rows["ensemble"] = record["ensemble"]
    frame = values_frame(rows)
    stem = latex.label_key("ensemble", path.name).replace(":", "-")
    views = ", ".join(record["tta"]) or "none"
    caption = (f"{latex.latex_escape(path.name)}: an ensemble of {len(record['members'])} runs averaging "
               f"{record['combine']}, test-time views: {latex.latex_escape(views)}; every row is one evaluation of "
               f"the {latex.latex_escape(record['split'])} split ({record['ensemble'].get('n', '?')} images), so no "
               "row has a confidence interval and none is marked as significantly best.")
    export.table(stem, latex.value_table(frame, frame.attrs["metrics"], caption, f"tab:{stem}", ci_brackets, "run"))
    ensemble = record["ensemble"]
    if "confusion_matrix" in ensemble:
        names = (list(ensemble.get("per_class_accuracy", {}))
                 or [str(i) for i in range(len(ensemble["confusion_matrix"]))])
        out = paper_figures.confusion_pdf(ensemble["confusion_matrix"], names, export.figure_path(f"{stem}-confusion"),
                                          record["split"])
        export.figures.append(Figure(out, f"{latex.latex_escape(path.name)}: the ensemble's confusion matrix, rows "
                                          "normalised.", f"fig:{stem}-confusion"))
    predictions = folder.predictions_file(record["split"])
    if predictions.is_file():
        import csv

        with predictions.open() as handle:
            rows_csv = list(csv.DictReader(handle))
        out = paper_figures.reliability_pdf([float(r["confidence"]) for r in rows_csv],
                                            [r["target"] == r["predicted"] for r in rows_csv],
                                            export.figure_path(f"{stem}-reliability"), record["split"])
        export.figures.append(Figure(out, f"{latex.latex_escape(path.name)}: the ensemble's reliability diagram.",
                                     f"fig:{stem}-reliability"))


EXPORTERS = {"study": _study, "sweep": _sweep, "search": _search, "ensemble": _ensemble, "group": _group, "run": _run}


# -- the paper ----------------------------------------------------------------------------------------
PREAMBLE = r"""\documentclass[twocolumn,10pt]{article}
\usepackage[margin=0.75in]{geometry}
\usepackage{booktabs}
\usepackage{siunitx}
\usepackage{graphicx}
"""


def write_paper(export: Export, paper: Path) -> Path:
    """PAPER/main.tex: an article that \\input's every table and shows every figure (paths relative to it)."""
    paper.mkdir(parents=True, exist_ok=True)

    def relative(path: Path) -> str:
        return Path(os.path.relpath(path.resolve(), paper.resolve())).as_posix()

    body = [PREAMBLE, f"\\title{{{latex.latex_escape(export.title)}}}", "\\author{}", "\\date{\\today}",
            "\\begin{document}", "\\maketitle", "", "\\section{Results}",
            "Tables and figures exported by \\texttt{fgvc report --format latex}.", ""]
    body += [f"\\input{{{relative(t)}}}" for t in export.tables]
    for figure in export.figures:
        body += ["\\begin{figure}[tbp]", "\\centering",
                 f"\\includegraphics[width=\\columnwidth]{{{relative(figure.path)}}}",
                 f"\\caption{{{figure.caption}}}", f"\\label{{{figure.label}}}", "\\end{figure}", ""]
    body += ["\\end{document}", ""]
    main = paper / MAIN
    main.write_text("\n".join(body))
    return main
