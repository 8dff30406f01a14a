"""``fgvc app``: a Gradio page over a trained run. Upload one or more images; see each one's top-k
classes with probabilities, the Grad-CAM (or ViT attention) overlay beside the model's view of it, and
the run's model card. Gradio is an optional extra (``pip install 'fgvc[app]'``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from fgvc.app.answers import Demo, results_html
from fgvc.errors import FgvcError

# The page must not call home: no analytics, and system fonts rather than Google's (offline machines
# would wait on them).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def require_gradio():
    try:
        import gradio
    except ImportError:
        raise FgvcError("the web demo needs Gradio, an optional extra: pip install 'fgvc[app]'") from None
    return gradio


def build_page(demo: Demo):
    """The Gradio Blocks for ``demo`` (not yet launched)."""
    gr = require_gradio()

    def classify(files):
        if not files:
            return "", [], ""
        method, answers, problems = demo.answer(files)
        for problem in problems:
            gr.Warning(problem)
        note = [f"{len(answers)} image(s); left: the model's view ({demo.run.cfg.model.name}), right: {method}"
                ] if answers else []
        note += [f"**{problem}**" for problem in problems]
        return results_html(answers), [(a.side_by_side, a.caption) for a in answers], "\n\n".join(note)

    with gr.Blocks(title=f"fgvc: {demo.run_dir.name}") as page:
        gr.Markdown(f"## {demo.run_dir.name}\n{len(demo.run.class_names)} classes: "
                    f"{', '.join(demo.run.class_names[:20])}{' ...' if len(demo.run.class_names) > 20 else ''}")
        with gr.Tab("Classify"):
            with gr.Row():
                with gr.Column(scale=1):
                    files = gr.File(label="images", file_count="multiple", file_types=["image"], elem_id="fgvc-upload")
                    note = gr.Markdown(elem_id="fgvc-note")
                with gr.Column(scale=2):
                    table = gr.HTML(elem_id="fgvc-table")
            pictures = gr.Gallery(label="what the model looks at", columns=2, height="auto", object_fit="contain",
                                  elem_id="fgvc-gallery")
        with gr.Tab("Model card"):
            gr.Markdown(demo.model_card(), elem_id="fgvc-card")
        files.change(classify, inputs=files, outputs=[table, pictures, note])
    return page


def serve(run_dir: Path | str, port: int = 7860, host: str = "127.0.0.1", top_k: int = 5,
          method: Optional[str] = None, block: bool = True, max_upload_mb: float = 20.0, queue_size: int = 64):
    """Start the demo on http://host:port; ``block`` False returns the running page (``page.close()``
    stops it).

    Uploads are bounded: a file over ``max_upload_mb`` is refused by the server (HTTP 413) before it
    is read, and at most ``queue_size`` requests wait; the model answers one request at a time, so
    memory stays that of one batch of uploads whatever the number of visitors."""
    gr = require_gradio()
    page = build_page(Demo(run_dir, top_k, method))
    page.queue(max_size=queue_size, default_concurrency_limit=1)
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])
    try:
        page.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block,
                    theme=theme, footer_links=[], ssr_mode=False, max_file_size=int(max_upload_mb * 1024 * 1024))
    except OSError as exc:
        raise FgvcError(f"cannot serve on {host}:{port}: {exc} (choose another --port)") from None
    return page
