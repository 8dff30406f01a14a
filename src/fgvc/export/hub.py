"""``fgvc push RUN REPO_ID``: the run folder as a Hugging Face model repository in timm's layout
(README.md model card, config.json, model.safetensors) plus fgvc's own files (config.yaml,
classes.json, metrics.json, report.html). ``hub_layout`` writes the same files into a local folder,
which loads back with ``timm.create_model("local-dir:FOLDER")``."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from fgvc.api import RunFolder, load_run, plain_model
from fgvc.errors import FgvcError

FGVC_FILES = (RunFolder.MODEL_CARD, RunFolder.TIMM_CONFIG, RunFolder.CONFIG, RunFolder.CLASSES, RunFolder.METRICS,
              RunFolder.REPORT)


def hub_layout(run_dir: Path, out: Path) -> Path:
    """Write the files ``fgvc push`` uploads into ``out``; returns ``out``."""
    from safetensors.torch import save_file

    from fgvc.report.model_card import write_model_card

    folder = RunFolder(run_dir).require()
    if not folder.metrics_file.is_file():
        raise FgvcError(f"{folder.path} has not finished (no {RunFolder.METRICS}); finish or resume it first")
    if not folder.model_card.is_file():  # runs finished before model cards existed
        write_model_card(folder.path)
    model = plain_model(load_run(folder.path))  # a refused or unreadable model: nothing written anywhere
    out = Path(out)
    RunFolder.check_writable(out, "choose another --local-dir")  # before any file is copied or written
    out.mkdir(parents=True, exist_ok=True)
    for name in FGVC_FILES:
        if (folder.path / name).is_file():
            shutil.copy2(folder.path / name, out / name)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / RunFolder.WEIGHTS)
    return out


def push(run_dir: Path, repo_id: str, private: bool = False, token: Optional[str] = None) -> str:
    """Upload the run to the Hugging Face Hub; the repository's URL."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise FgvcError("fgvc push needs the Hugging Face Hub, and HF_HUB_OFFLINE is set; unset it on a machine "
                        "that is online (or write the files with --local-dir and upload them later)")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    with tempfile.TemporaryDirectory() as tmp:
        hub_layout(run_dir, Path(tmp))
        api = HfApi(token=token)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            commit = api.upload_folder(folder_path=tmp, repo_id=repo_id, commit_message=f"fgvc push {Path(run_dir).name}")
        except HfHubHTTPError as exc:
            raise FgvcError(f"fgvc push {repo_id}: the Hub refused ({str(exc).splitlines()[0]}); log in with "
                            "`huggingface-cli login` or pass --token") from None
        except Exception as exc:  # noqa: BLE001 - only a network failure is turned into advice
            if not is_network_error(exc):
                raise
            raise FgvcError(f"fgvc push {repo_id}: cannot reach the Hugging Face Hub ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else 'no connection'}); nothing was uploaded. "
                            "Write the same files with --local-dir and upload them from a machine that is online") from None
    return str(getattr(commit, "repo_url", f"https://huggingface.co/{repo_id}"))


# The Hub client's network failures by class name, whichever HTTP library it is built on: requests
# (ConnectionError, an OSError), httpx or its fork httpx2 (TransportError, which is not an OSError).
NETWORK_ERRORS = {"TransportError", "NetworkError", "ConnectError", "TimeoutException", "ConnectionError"}


def is_network_error(exc: BaseException) -> bool:
    """True when ``exc`` says the network could not be reached (not that the Hub refused)."""
    return isinstance(exc, OSError) or any(cls.__name__ in NETWORK_ERRORS for cls in type(exc).__mro__)
