"""Class names into words: cleaning, template sets and files, descriptions, prompt ensembling."""

import pytest
import torch
import torch.nn.functional as F

from fgvc.errors import ConfigError
from fgvc.models.prompts import (TEMPLATE_SETS, class_prompts, clean_class_name, ensemble_embeddings,
                                 read_descriptions, resolve_templates)


@pytest.mark.parametrize("raw, clean", [
    ("001.Black_footed_Albatross", "black footed albatross"),  # CUB-200
    ("n02085620-Chihuahua", "chihuahua"),  # Stanford Dogs
    ("n02097130-giant_schnauzer", "giant schnauzer"),
    ("737-200", "737-200"),  # FGVC Aircraft: a model code keeps its hyphen and number
    ("AM General Hummer SUV 2000", "am general hummer suv 2000"),  # Stanford Cars
    ("07_scratch", "scratch"),
    ("0.33", "0.33"),  # ELPV grades are numbers, not names: left alone (descriptions name them)
    ("  pink_primrose ", "pink primrose"),
])
def test_class_names_are_cleaned_the_way_people_write_them(raw, clean):
    assert clean_class_name(raw) == clean


def test_templates_from_a_set_a_list_or_a_file(tmp_path):
    assert resolve_templates("birds") == list(TEMPLATE_SETS["birds"])
    assert resolve_templates(["a photo of a {}."]) == ["a photo of a {}."]
    text = tmp_path / "t.txt"
    text.write_text("# mine\na photo of a {}.\n\nan image of the {}.\n")
    assert resolve_templates(str(text)) == ["a photo of a {}.", "an image of the {}."]
    listed = tmp_path / "t.yaml"
    listed.write_text("templates:\n  - 'a {} cell.'\n")
    assert resolve_templates(str(listed)) == ["a {} cell."]
    with pytest.raises(ConfigError, match=r"template 'a photo' must hold the class name as one \{\}"):
        resolve_templates(["a photo"])
    with pytest.raises(ConfigError, match="neither a template set"):
        resolve_templates(str(tmp_path / "missing.txt"))


def test_descriptions_replace_templates_for_their_classes(tmp_path):
    path = tmp_path / "elpv.yaml"
    path.write_text("'0.0': a solar cell without defects\n'1.0': [a cracked solar cell, a broken solar cell]\n")
    descriptions = read_descriptions(path, ["0.0", "0.33", "1.0"])
    prompts = class_prompts(["0.0", "0.33", "1.0"], ["a photo of a {}."], descriptions)
    assert prompts == [["a solar cell without defects"], ["a photo of a 0.33."],
                       ["a cracked solar cell", "a broken solar cell"]]
    path.write_text("'0.5': a cell\n")
    with pytest.raises(ConfigError, match="'0.5' not among the data set's classes"):
        read_descriptions(path, ["0.0", "1.0"])


def test_ensembling_is_the_normalised_mean_of_normalised_embeddings():
    table = {"a": torch.tensor([3.0, 0.0]), "b": torch.tensor([0.0, 1.0]), "c": torch.tensor([-2.0, 2.0])}
    rows = ensemble_embeddings(lambda texts: torch.stack([table[t] for t in texts]), [["a", "b"], ["c"]])
    # by hand: a and b normalise to unit axes, whose mean (0.5, 0.5) normalises to (1, 1) / sqrt 2
    assert torch.allclose(rows[0], torch.tensor([1.0, 1.0]) / 2 ** 0.5)
    assert torch.allclose(rows[1], F.normalize(table["c"], dim=0))
