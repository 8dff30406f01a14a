"""What the web demo shows for a set of images, with no web framework in sight: each image's top-k
classes and the model's view of it beside the heat map, as an HTML table and picture pairs; and the
run's model card as Markdown."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from fgvc import api
from fgvc.errors import DataError, ImageTooLargeError


@dataclass
class Answer:
    name: str
    top: list[tuple[str, float]]  # (class, probability), most probable first
    view: np.ndarray  # the picture as the model sees it (eval transform), uint8 HxWx3
    overlay: np.ndarray  # the heat map over that view, uint8 HxWx3

    @property
    def side_by_side(self) -> np.ndarray:
        gap = np.full((self.view.shape[0], 4, 3), 255, dtype=np.uint8)
        return np.concatenate([self.view, gap, self.overlay], axis=1)

    @property
    def caption(self) -> str:
        label, probability = self.top[0]
        return f"{self.name}: {label} ({probability:.1%})"


class Demo:
    """A loaded run that answers uploads; loads the model once."""

    def __init__(self, run_dir: Path | str, top_k: int = 5, method: Optional[str] = None):
        self.run_dir = Path(run_dir)
        self.run = api.load_run(self.run_dir)
        self.top_k = max(1, min(top_k, len(self.run.class_names)))
        self.method = method

    def answer(self, files: Sequence[Path | str], batch: int = 16) -> tuple[str, list[Answer], list[str]]:
        """(method used, one Answer per readable file, one message per file that is not a readable image):
        an unreadable upload is named and skipped, the others are still answered."""
        readable, problems = [], []
        for file in map(Path, files):
            try:
                readable.append((file, api.open_image(file)))
            except ImageTooLargeError as exc:  # a decompression bomb is named with its size, not decoded
                problems.append(f"{file.name}: {exc.reason}, skipped")
            except DataError:
                problems.append(f"{file.name}: not a readable image, skipped")
        answers: list[Answer] = []
        method = self.method
        for start in range(0, len(readable), batch):
            chunk = readable[start:start + batch]
            method, probs, views, overlays = api.explain(self.run, [image for _, image in chunk], method)
            values, indices = probs.topk(self.top_k, dim=-1)
            for (file, _), p, i, view, overlay in zip(chunk, values, indices, views, overlays):
                top = [(self.run.class_names[int(c)], float(v)) for v, c in zip(p, i)]
                answers.append(Answer(file.name, top, view, overlay))
        return method or "", answers, problems

    def model_card(self) -> str:
        """The run's README.md model card without its YAML front matter (empty if it has none)."""
        card = api.RunFolder(self.run_dir).model_card
        if not card.is_file():
            return f"*{self.run_dir.name} has no model card (README.md); it is written when a run finishes.*"
        text = card.read_text()
        if text.startswith("---"):
            end = text.find("\n---", 3)
            text = text[end + 4:] if end != -1 else text
        return text.lstrip()


def results_html(answers: Sequence[Answer]) -> str:
    """One row per image and rank: the image, the class, its probability as a number and a bar. The top
    class of each image is marked ``data-rank="1"`` (what a browser test reads)."""
    rows = []
    for a in answers:
        for rank, (label, p) in enumerate(a.top, 1):
            name = html.escape(a.name) if rank == 1 else ""
            weight = "font-weight:600;" if rank == 1 else ""
            rows.append(
                f'<tr class="fgvc-row" data-image="{html.escape(a.name)}" data-rank="{rank}">'
                f'<td>{name}</td><td>{rank}</td><td class="fgvc-class" style="{weight}">{html.escape(label)}</td>'
                f'<td style="text-align:right">{p:.1%}</td>'
                f'<td style="width:40%"><div style="background:#f97316;height:0.8em;width:{100 * p:.1f}%"></div></td></tr>')
    return ('<table id="fgvc-results" style="width:100%;border-collapse:collapse">'
            "<thead><tr><th>image</th><th>rank</th><th>class</th><th>probability</th><th></th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")
