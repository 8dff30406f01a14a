"""Progress bars: silent when stderr is not a terminal; on a terminal (a real pseudo-terminal here),
training counts epochs like the log and predicting shows its bar."""

import os
import pty
import re
import subprocess
import sys

from fgvc.progress import track

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_track_is_silent_and_transparent_off_a_terminal(capsys, monkeypatch):
    monkeypatch.delenv("FGVC_PROGRESS", raising=False)
    assert list(track(range(5), "counting")) == [0, 1, 2, 3, 4]
    assert capsys.readouterr().err == ""


def in_a_terminal(args: list[str], cwd) -> str:
    """Run ``fgvc ARGS`` with stdout and stderr on a pseudo-terminal; everything it printed, ANSI stripped."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm", "FGVC_PROGRESS": ""}
    process = subprocess.Popen([sys.executable, "-c", "from fgvc.cli import main; main()", *args], cwd=cwd,
                               stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=600)
    os.close(leader)
    text = ANSI.sub("", b"".join(chunks).decode(errors="replace"))
    assert process.returncode == 0, text[-3000:]
    return text


def test_bars_on_a_terminal_count_epochs_like_the_log(tiny_overrides, tmp_path):
    sets = [a for o in tiny_overrides for a in ("--set", o)]
    (tmp_path / "exp.yaml").write_text("{}\n")
    trained = in_a_terminal(["train", "exp.yaml", *sets], tmp_path)
    assert "epoch 2/2" in trained and "Epoch 1/1" not in trained and "Epoch 0" not in trained
    assert "predicting 12 images" in trained  # the evaluation after training: eval's and predict's bar
