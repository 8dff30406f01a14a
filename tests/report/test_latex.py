"""fgvc report --format latex: booktabs tables from the same frame as the Markdown tables, the bold rule,
captions, PDF figures and a paper that pdflatex compiles (skipped where pdflatex / poppler are missing)."""

import json
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from fgvc.cli import app
from fgvc.config import load_config
from fgvc.errors import ReportError
from fgvc.experiments.groups import summarize_group, write_group
from fgvc.experiments.repeat import repeat
from fgvc.report.frames import groups_question, question_frame
from fgvc.report.latex import latex_escape, question_tables
from fgvc.report.paper import export_latex
from fgvc.report.tables import question_markdown

runner = CliRunner()
SEEDS = [1, 2, 3, 4, 5]
BASELINE = [0.70, 0.72, 0.71, 0.69, 0.73]
BETTER = [0.72, 0.735, 0.725, 0.71, 0.742]  # +1.64 points, paired: significant
NOISE = [0.705, 0.715, 0.712, 0.70, 0.725]  # within the seed noise of the baseline
AS_GOOD = [0.721, 0.733, 0.726, 0.712, 0.74]  # as good as BETTER: no single best


def fake_group(path, values, seeds=SEEDS):
    write_group(path, "repeat", load_config(), {f"seed-{s}": {"seed": s} for s in seeds})
    for s, v in zip(seeds, values):
        (path / f"seed-{s}").mkdir(parents=True)
        (path / f"seed-{s}" / "metrics.json").write_text(json.dumps({"seed": s, "test": {"top1": v, "n": 100}}))
    summarize_group(path)
    return path


def bold_rows(frame, metric="top1"):
    return list(frame.index[frame[f"{metric} best"]])


def test_bold_only_where_the_paired_tests_say_best_is_significantly_better_than_every_other(tmp_path):
    base, better, noise = (fake_group(tmp_path / n, v) for n, v in
                           (("base_line", BASELINE), ("better", BETTER), ("noise", NOISE)))
    frame = question_frame(groups_question([base, better, noise]))
    assert bold_rows(frame) == ["better"]  # better than base_line (recorded) and than noise (tested here)
    tables = question_tables(frame, ci_brackets=False, label_prefix="t")
    values = next(iter(tables.values()))
    assert values.count(r"\bfseries") == 1 and r"\bfseries 72.6 \pm" in values
    markdown = question_markdown(groups_question([base, better, noise]))
    assert markdown.count("**72.6 [") == 1 and "bold: best and significantly better" in markdown

    assert bold_rows(question_frame(groups_question([base, noise]))) == []  # nothing significant: nothing bold
    as_good = fake_group(tmp_path / "as_good", AS_GOOD)
    frame = question_frame(groups_question([base, better, as_good]))
    assert bold_rows(frame) == []  # best, and better than the reference, but not than as_good
    assert r"\bfseries" not in "".join(question_tables(frame, False, "t").values())
    assert bold_rows(question_frame(groups_question([better, base, noise]))) == ["better"]  # the reference is best


def test_caption_states_seeds_split_reference_test_and_escapes(tmp_path):
    base, better = fake_group(tmp_path / "base_line", BASELINE), fake_group(tmp_path / "better", BETTER)
    question = groups_question([base, better], title="Which 50% trick?")
    question["name"] = "tricks_1"
    tables = question_tables(question_frame(question), ci_brackets=False, label_prefix="study_x")
    values, differences = tables["study-x-tricks-1"], tables["study-x-tricks-1-differences"]
    caption = re.search(r"\\caption\{(.*)\}\n", values).group(1)
    for part in ("Which 50\\% trick?", "Test split", "5 seeds (1, 2, 3, 4, 5)", "Reference arm: base\\_line",
                 "paired t-test", "95~\\% CI", "mean $\\pm$ half the width", "top-1 in \\%",
                 "Bold: best in its column and significantly better"):
        assert part in caption, part
    assert r"\label{tab:study-x:tricks-1}" in values and r"\label{tab:study-x:tricks-1:differences}" in differences
    assert "base\\_line &" in values and r"\toprule" in values and r"\bottomrule" in values
    assert r"\textbf{$+1.6$ [$+1.2$, $+2.1$]}" in differences  # the significant difference, in points
    assert latex_escape("a_b & 5% {x} #1 $") == r"a\_b \& 5\% \{x\} \#1 \$"
    brackets = question_tables(question_frame(question), ci_brackets=True, label_prefix="s")["s-tricks-1"]
    assert "mean [bounds of the 95~\\% CI]" in brackets and r"\textbf{72.6 [" in brackets and r"\pm" not in brackets


def _cells(line: str, sep: str) -> list[str]:
    return [c.strip().strip("*").replace(r"\textbf{", "").rstrip("}").strip() for c in line.split(sep)]


def test_markdown_and_latex_tables_of_a_question_hold_the_same_numbers(tmp_path):
    groups = [fake_group(tmp_path / n, v) for n, v in (("base", BASELINE), ("better", BETTER), ("noise", NOISE))]
    question = groups_question(groups)
    markdown = question_markdown(question)
    latex = next(iter(question_tables(question_frame(question), ci_brackets=True, label_prefix="q").values()))
    for arm in ("base", "better", "noise"):
        md_row = next(line for line in markdown.splitlines() if re.match(rf"\| (\*\*)?{arm}(\*\*)? \|", line))
        tex_row = next(line for line in latex.splitlines() if line.startswith(f"{arm} &"))
        md_value = _cells(md_row, "|")[3]  # arm, overrides, top-1 mean [CI]
        tex_value = _cells(tex_row.removesuffix(r"\\"), "&")[1]
        assert md_value == tex_value and re.fullmatch(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", md_value)
        mean, low, high = map(float, re.findall(r"\d+\.\d", md_value))
        pm = next(iter(question_tables(question_frame(question), False, "q").values()))
        shown = next(line for line in pm.splitlines() if line.startswith(f"{arm} &"))
        assert f"{mean:.1f} \\pm" in shown
        half = float(re.search(r"\\pm (\d+\.\d)", shown).group(1))
        assert abs(half - (high - low) / 2) <= 0.051  # the half-width of the same CI, rounded once


def _compile(folder):
    if not shutil.which("pdflatex"):
        pytest.skip("pdflatex is not installed (apt-get install texlive-latex-base texlive-latex-recommended "
                    "texlive-science; .ci/run does)")
    found = subprocess.run(["kpsewhich", "siunitx.sty", "booktabs.sty"], capture_output=True, text=True).stdout
    if "siunitx" not in found or "booktabs" not in found:
        pytest.skip("siunitx or booktabs is missing (apt-get install texlive-latex-recommended texlive-science)")
    if not (shutil.which("pdftotext") and shutil.which("pdfinfo")):
        pytest.skip("poppler-utils (pdftotext, pdfinfo) is not installed; .ci/run installs it")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"], cwd=folder,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    pdf = folder / "main.pdf"
    pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(pdf)], capture_output=True,
                                                                 text=True).stdout).group(1))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True).stdout
    return pages, text


def test_a_real_repeat_group_and_a_study_compile_to_a_paper(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.epochs=2"])
    summary = repeat(cfg, [1, 2], tmp_path / "my_group", log=lambda _: None)
    result = runner.invoke(app, ["report", str(tmp_path / "my_group"), "--format", "latex",
                                 "--paper", str(tmp_path / "paper")])
    assert result.exit_code == 0, result.output
    assert "wrote 1 tables and 3 figures" in result.output
    figures = sorted(p.name for p in (tmp_path / "paper" / "figures").iterdir())
    assert figures == ["group-my-group-confusion.pdf", "group-my-group-curves.pdf", "group-my-group-reliability.pdf"]
    assert all((tmp_path / "paper" / "figures" / f).read_bytes().startswith(b"%PDF") for f in figures)
    main = (tmp_path / "paper" / "main.tex").read_text()
    assert r"\input{tables/group-my-group.tex}" in main and r"\includegraphics[width=\columnwidth]" in main
    assert all(p in main for p in (r"\usepackage{booktabs}", r"\usepackage{siunitx}", r"\usepackage{graphicx}"))
    table = (tmp_path / "paper" / "tables" / "group-my-group.tex").read_text()
    assert "repeat over 2 seeds (1, 2)" in table and "my\\_group" in table
    pages, text = _compile(tmp_path / "paper")
    assert 1 <= pages <= 3
    top1 = summary["metrics"]["test"]["top1"]
    assert f"{100 * top1['mean']:.1f}" in text  # the table's number, in the PDF's text
    assert f"{100 * (top1['ci_high'] - top1['ci_low']) / 2:.1f}" in text

    # a study question over constructed groups, exported into one folder and a paper elsewhere
    groups = [fake_group(tmp_path / "study" / "arms" / n, v) for n, v in (("base", BASELINE), ("better", BETTER))]
    question = {**groups_question(groups, title="Better or not"), "name": "q1"}
    (tmp_path / "study" / "study.json").write_text(json.dumps({"study": "configs/study_x", "seeds": SEEDS,
                                                               "split": "test", "questions": {"q1": question}}))
    export = export_latex([tmp_path / "study"], out=tmp_path / "export", paper=tmp_path / "paper2", ci_brackets=True)
    assert [t.name for t in export.tables] == ["study-x-q1.tex", "study-x-q1-differences.tex"]
    assert [f.path.name for f in export.figures] == ["study-x-q1-forest.pdf"]
    pages, text = _compile(tmp_path / "paper2")
    assert "72.6 [" in text and "+1.6" in text and "Better or not" in text

    bad = runner.invoke(app, ["report", str(tmp_path / "export"), "--format", "latex"])
    assert bad.exit_code != 0 and "nothing to export" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["report", str(tmp_path / "my_group"), "--format", "pdf"])
    assert bad.exit_code != 0 and "choose html or latex" in bad.output


def _one_line(result):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_an_unwritable_paper_folder_is_one_line_naming_it(tmp_path):
    group = fake_group(tmp_path / "g", BASELINE)
    (tmp_path / "afile").write_text("not a folder")
    paper = tmp_path / "afile" / "paper"  # a folder under a regular file: NotADirectoryError
    with pytest.raises(ReportError, match=rf"cannot write {re.escape(str(paper))}.*: Not a directory; choose an "
                                          r"--out / --paper folder you can write to"):
        export_latex([group], paper=paper)
    line = _one_line(runner.invoke(app, ["report", str(group), "--format", "latex", "--paper", str(paper)]))
    assert str(paper) in line and "Not a directory" in line and "--paper" in line
    # tables written elsewhere, the paper alone unwritable: named too
    line = _one_line(runner.invoke(app, ["report", str(group), "--format", "latex", "--out", str(tmp_path / "o"),
                                         "--paper", str(paper)]))
    assert f"cannot write {paper}" in line


@pytest.mark.parametrize("record", ["summary.json", "study.json"])
def test_a_damaged_summary_or_study_json_is_one_line_naming_it(tmp_path, record):
    folder = fake_group(tmp_path / "g", BASELINE)
    if record == "study.json":
        folder = tmp_path / "study"
        folder.mkdir()
    (folder / record).write_text('{"kind": "repeat", "metrics": {"test": ')  # cut short
    with pytest.raises(ReportError, match=rf"{re.escape(str(folder / record))} is damaged \(not valid JSON: "):
        export_latex([folder], paper=tmp_path / "paper")
    line = _one_line(runner.invoke(app, ["report", str(folder), "--format", "latex", "--paper", str(tmp_path / "p")]))
    assert str(folder / record) in line and "damaged" in line and "again" in line


def test_every_folder_kind_exports_its_tables(tmp_path):
    """A sweep, a study of configs, a search's confirmation, a crossval group and an ensemble (constructed
    folders: the kinds differ in what they record, not in how they were trained)."""
    cells = [fake_group(tmp_path / "sweep" / n, v) for n, v in (("lr=0.1", BASELINE), ("lr=0.01", BETTER))]
    (tmp_path / "sweep" / "sweep.json").write_text(json.dumps({"grid": {"optim.lr": [0.1, 0.01]}, "seeds": SEEDS,
                                                               "cells": [str(c) for c in cells]}))
    export = export_latex([tmp_path / "sweep"])
    assert export.out == tmp_path / "sweep" / "latex" and len(export.tables) == 2 and len(export.figures) == 1
    assert "Sweep of optim.lr" in export.tables[0].read_text() and r"\bfseries 72.6" in export.tables[0].read_text()

    arms = [fake_group(tmp_path / "configs" / n, v) for n, v in (("cnn", BASELINE), ("vit", NOISE))]
    (tmp_path / "configs" / "study.json").write_text(json.dumps({
        "study": "configs/study_cnn_vs_vit", "seeds": SEEDS, "split": "test", "comparisons": [],
        "arms": [{"name": a.name, "group": str(a)} for a in arms]}))
    table = export_latex([tmp_path / "configs"]).tables[0].read_text()
    assert "Reference arm: cnn" in table and "No value is bold" in table

    search = tmp_path / "search"
    fake_group(search / "confirm" / "start", BASELINE)
    fake_group(search / "confirm" / "best", BETTER)
    (search / "search.json").write_text(json.dumps({"trials": [{}] * 4, "metric": "top1", "mode": "max",
                                                    "best": {"params": {"optim.lr": 0.003, "loss.name": "focal"}}}))
    tables = {t.name: t.read_text() for t in export_latex([search]).tables}
    assert "optim.lr & 0.003" in tables["search-best.tex"] and "best of 4 trials" in tables["search-best.tex"]
    assert "Reference arm: start" in tables["search-search-table.tex"]

    write_group(tmp_path / "cv", "crossval", load_config(), {f"fold-{k}": {"fold": k, "seed": 0} for k in range(3)})
    for k, v in enumerate([0.7, 0.75, 0.72]):
        (tmp_path / "cv" / f"fold-{k}").mkdir()
        (tmp_path / "cv" / f"fold-{k}" / "metrics.json").write_text(json.dumps({"val": {"top1": v, "n": 10}}))
    summarize_group(tmp_path / "cv")
    table = export_latex([tmp_path / "cv"], ci_brackets=True).tables[0].read_text()
    assert "crossval over 3 folds (0, 1, 2)" in table and "72.3 [" in table

    (tmp_path / "ens").mkdir()
    (tmp_path / "ens" / "ensemble.json").write_text(json.dumps({
        "split": "test", "tta": ["flip"], "combine": "probs",
        "members": [{"run": "runs/a", "top1": 0.7, "n": 4}, {"run": "runs/b", "top1": 0.72, "n": 4}],
        "members_mean": {"top1": 0.71}, "ensemble": {"top1": 0.75, "n": 4, "confusion_matrix": [[2, 0], [1, 1]],
                                                      "per_class_accuracy": {"ok": 1.0, "bad_cell": 0.5}}}))
    export = export_latex([tmp_path / "ens"])
    table = export.tables[0].read_text()
    assert "members' mean & 71.0" in table and "ensemble & 75.0" in table and "test-time views: flip" in table
    assert [f.path.name for f in export.figures] == ["ensemble-ens-confusion.pdf"]
