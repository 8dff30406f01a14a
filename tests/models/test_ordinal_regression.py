"""probe.head: regression (Deitsch et al.): the ridge output rounded to the nearest class, as a Linear head."""
import numpy as np
import pytest
import torch

from fgvc.models.ordinal_regression import fit_ordinal_ridge


def test_the_linear_head_rounds_the_regression_to_the_nearest_class():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    position = 1 / (1 + np.exp(-x[:, 0] * 2))  # a defect probability in (0, 1) driven by feature 0
    y = np.clip(np.rint(position * 3), 0, 3).astype(np.int64)
    fit = fit_ordinal_ridge(x, y, 4, alpha=1.0)
    y_hat = fit.predict(x)
    from sklearn.linear_model import Ridge  # the same line as scikit-learn's on standardised features
    scaled = (x - x.mean(0)) / (x.std(0) + 1e-6)
    assert np.allclose(y_hat, Ridge(alpha=1.0).fit(scaled, y / 3).predict(scaled), atol=1e-8)
    head = fit.to_linear(4, temperature=0.05)
    with torch.no_grad():
        logits = head(torch.from_numpy(x).float())
    rounded = np.clip(np.rint(y_hat * 3), 0, 3)
    away_from_midpoints = np.abs(y_hat * 3 - np.floor(y_hat * 3) - 0.5) > 1e-3
    assert np.array_equal(logits.argmax(1).numpy()[away_from_midpoints], rounded[away_from_midpoints])
    assert (rounded == y).mean() > 0.8  # it learned the grades
    # the probabilities are the softmax of -(y_hat - g_k)^2 / t
    grades = np.arange(4) / 3
    by_hand = torch.softmax(torch.from_numpy(-(y_hat[:, None] - grades) ** 2 / 0.05), 1)
    assert torch.allclose(logits.softmax(1).double(), by_hand, atol=1e-4)
    from fgvc.errors import ConfigError
    with pytest.raises(ConfigError, match="probe.head: regression rounds to ordered classes and this data has 1"):
        fit_ordinal_ridge(x, np.zeros(len(x), dtype=np.int64), 1, alpha=1.0)


def test_the_probe_trains_a_regression_head_chosen_on_val(tiny_overrides):
    import json

    from fgvc.config import load_config
    from fgvc.runfolder import RunFolder
    from fgvc.train.run import train

    cfg = load_config(None, tiny_overrides + ["train.engine=probe", "probe.head=regression", "probe.c=auto"])
    result = train(cfg, progress=False)
    metrics = json.loads(RunFolder(result.run_dir).metrics_file.read_text())
    assert 0 <= metrics["test"]["top1"] <= 1 and metrics["probe_c"] in (1.0, 0.1, 0.01, 0.001, 0.0001, 0.00001)
    history = RunFolder(result.run_dir).history_file.read_text().splitlines()
    assert len(history) == 1 + 6 * 6  # one row per (ridge strength, temperature)
    from fgvc.errors import ConfigError
    with pytest.raises(ConfigError, match="cannot be used with probe.head: regression"):
        load_config(None, tiny_overrides + ["train.engine=probe", "probe.head=regression", "loss.name=focal"])
