"""fgvc app: the answers the page shows equal fgvc's predictions, and the real page, driven in headless
Chromium, shows the right top class for an uploaded image."""

import shutil
import socket
import sys

import pytest
from typer.testing import CliRunner

from fgvc import api
from fgvc.app.answers import Demo, results_html
from fgvc.cli import app
from fgvc.config import load_config
from fgvc.data.sources.elpv import packaged_root
from fgvc.evaluate.runs import images_to_predict
from fgvc.train.run import train

runner = CliRunner()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, colour_data):
    overrides = [
        "data.name=image_folder", f"data.root={colour_data / 'train'}", f"data.test_root={colour_data / 'test'}",
        "data.val_fraction=0.25", "data.num_workers=0", "data.transforms.resize=32", "data.transforms.crop=32",
        "model.name=resnet10t", "model.pretrained=false", "train.epochs=2", "train.batch_size=8", "optim.lr=0.01",
        f"output.dir={tmp_path_factory.mktemp('app')}", "output.name=colours"]
    return train(load_config(None, overrides), progress=False).run_dir


def test_answers_are_fgvcs_predictions_with_overlays(run_dir, colour_data):
    files = sorted((colour_data / "test" / "red").iterdir())[:2] + sorted((colour_data / "test" / "blue").iterdir())[:1]
    demo = Demo(run_dir, top_k=10)
    method, answers, problems = demo.answer(files)
    assert problems == [] and method == "gradcam" and demo.top_k == 3  # capped at the class count
    run = api.load_run(run_dir)
    probs = api.predict(run, images_to_predict(files, run.class_names))
    for answer, p in zip(answers, probs):
        assert [c for c, _ in answer.top] == [run.class_names[i] for i in p.argsort(descending=True).tolist()]
        assert [v for _, v in answer.top] == pytest.approx(sorted(p.tolist(), reverse=True), abs=1e-5)
        assert answer.view.shape == answer.overlay.shape == (32, 32, 3)
        assert answer.side_by_side.shape == (32, 68, 3)
    page = results_html(answers)
    assert page.count('data-rank="1"') == 3 and page.count('class="fgvc-row"') == 9
    assert f'data-image="{files[0].name}" data-rank="1"' in page
    card = demo.model_card()
    assert not card.startswith("---") and "## Intended use and limits" in card


def test_a_corrupt_upload_is_named_and_skipped_while_the_others_are_answered(run_dir, colour_data, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    good = sorted((colour_data / "test" / "red").iterdir())[0]
    method, answers, problems = Demo(run_dir).answer([bad, good])
    assert problems == ["broken.png: not a readable image, skipped"]
    assert [a.name for a in answers] == [good.name]


def test_app_without_gradio_says_how_to_install_it(run_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now raises ImportError
    result = runner.invoke(app, ["app", str(run_dir), "--port", "7999"])
    assert result.exit_code != 0
    assert "pip install 'fgvc[app]'" in result.output and "Traceback" not in result.output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (Debian: apt-get install chromium)")
def test_the_page_in_headless_chromium_shows_the_top_class(run_dir, tmp_path):
    pytest.importorskip("gradio", reason="the app extra is not installed: pip install 'fgvc[app]'")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from fgvc.app.web import serve

    image = sorted((packaged_root() / "images").glob("*.png"))[7]  # a real solar-cell photograph
    run = api.load_run(run_dir)
    expected = run.class_names[int(api.explain(run, [api.open_image(image)])[1].argmax())]
    port = free_port()
    page = serve(run_dir, port=port, block=False)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            tab = browser.new_page()
            tab.goto(f"http://127.0.0.1:{port}", wait_until="domcontentloaded")
            # a file that is not an image: a message naming it in the page, and the app keeps serving
            broken = tmp_path / "notes.png"
            broken.write_text("these are notes, not a picture")
            tab.locator("#fgvc-upload input[type=file]").set_input_files(str(broken))
            playwright.expect(tab.locator("#fgvc-note")).to_contain_text(
                "notes.png: not a readable image, skipped", timeout=60_000)
            tab.screenshot(path=str(tmp_path / "app-error.png"))
            tab.locator("#fgvc-upload input[type=file]").set_input_files(str(image))
            top = tab.locator('#fgvc-results tr[data-rank="1"] .fgvc-class')
            top.wait_for(timeout=60_000)
            playwright.expect(top).to_have_text(expected)
            assert tab.locator('#fgvc-results tr[data-rank="1"]').get_attribute("data-image") == image.name
            tab.locator("#fgvc-gallery img").first.wait_for(timeout=30_000)
            tab.get_by_role("tab", name="Model card").click()
            playwright.expect(tab.locator("#fgvc-card")).to_contain_text("Intended use and limits", timeout=30_000)
            tab.screenshot(path=str(tmp_path / "app.png"))
            browser.close()
    finally:
        page.close()


def test_twenty_concurrent_visitors_are_all_answered_and_uploads_are_bounded(run_dir, colour_data):
    """20 clients at once on 127.0.0.1, each its own connection: every one gets its image's answer; a file
    over --max-upload-mb is refused by the server before the model sees it."""
    pytest.importorskip("gradio", reason="the app extra is not installed: pip install 'fgvc[app]'")
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client, handle_file

    from fgvc.app.web import serve

    images = sorted((colour_data / "test").rglob("*.png"))[:10]
    big = sorted((packaged_root() / "images").glob("*.png"))[0]  # a real 300 px cell: tens of KB
    small_limit_mb = 0.01
    assert all(p.stat().st_size < small_limit_mb * 2**20 < big.stat().st_size for p in images)
    run = api.load_run(run_dir)
    expected = {p.name: run.class_names[int(api.predict(run, images_to_predict([p], run.class_names)).argmax())]
                for p in images}
    port = free_port()
    page = serve(run_dir, port=port, block=False, max_upload_mb=small_limit_mb)

    def visit(i: int) -> str:
        image = images[i % len(images)]
        table = Client(f"http://127.0.0.1:{port}", verbose=False).predict([handle_file(str(image))],
                                                                          api_name="/classify")[0]
        return f'data-image="{image.name}" data-rank="1"' in table and expected[image.name] in table.split(
            f'data-image="{image.name}" data-rank="1"')[1].split("</tr>")[0]

    try:
        with ThreadPoolExecutor(20) as pool:
            answered = list(pool.map(visit, range(20)))
        assert answered == [True] * 20
        with pytest.raises(Exception, match="(?i)(413|too large|exceeds|maximum)"):
            Client(f"http://127.0.0.1:{port}", verbose=False).predict([handle_file(str(big))], api_name="/classify")
    finally:
        page.close()
