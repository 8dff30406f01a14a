"""Every data set adapter on a tiny fixture in the data set's exact official layout."""

import numpy as np
import pytest
from builders import (
    AIRCRAFT,
    CAR_CLASSES,
    make_cub,
    make_elpv,
    make_fashion_mnist_gz,
    make_fgvc_aircraft,
    make_flowers102,
    make_image_folder,
    make_kaggle_csv,
    make_oxford_pets,
    make_stanford_cars,
    make_stanford_dogs,
    write_image,
)

from fgvc.config import CsvConfig, DataConfig, load_config
from fgvc.errors import ConfigError
from fgvc.data import load_data, load_source
from fgvc.data.sources.cub import load_cub200
from fgvc.data.sources.elpv import GRADE_NAMES, load_elpv
from fgvc.data.sources.fashion_mnist import load_fashion_mnist
from fgvc.data.sources.image_folder import load_image_folder
from fgvc.data.sources.kaggle_csv import load_kaggle_csv
from fgvc.data.sources.stanford_dogs import load_stanford_dogs
from fgvc.data.sources.torchvision_sets import (
    load_fgvc_aircraft,
    load_flowers102,
    load_oxford_pets,
    load_stanford_cars,
)
from fgvc.errors import DataError


def test_cub_official_split_labels_and_names(tmp_path):
    make_cub(tmp_path, classes=3, per_class=4)
    parts = load_cub200(tmp_path)
    assert parts.class_names == ["Bird number 1", "Bird number 2", "Bird number 3"]
    # per class: images k < 3 are is_training_image=1 (3 train, 1 test)
    assert len(parts.train) == 9 and len(parts.test) == 3
    assert parts.train.class_counts().tolist() == [3, 3, 3]
    assert parts.test.labels.tolist() == [0, 1, 2]
    assert parts.train.paths[0].name == "Bird_number_1_0000_1.jpg"
    assert parts.train.load(0).size == (40, 32)


def test_cub_accepts_parent_folder_and_crops_to_box(tmp_path):
    make_cub(tmp_path, classes=2, per_class=4)
    parts = load_cub200(tmp_path / "CUB_200_2011", crop_to_box=True)
    # bounding_boxes.txt: class c, image k -> x=2+c, y=3, w=20+k, h=16
    assert parts.train.boxes[1].tolist() == [2.0, 3.0, 21.0, 16.0]
    assert parts.train.load(1).size == (21, 16)
    assert parts.train.load(0).size == (20, 16)


def test_cub_missing_folder_names_expected_files(tmp_path):
    with pytest.raises(DataError, match="not found.*CUB_200_2011.tgz"):
        load_cub200(tmp_path / "nope")
    (tmp_path / "CUB_200_2011").mkdir()
    with pytest.raises(DataError, match="missing images.txt, image_class_labels.txt.*bounding_boxes.txt"):
        load_cub200(tmp_path)


def test_stanford_dogs_lists(tmp_path):
    make_stanford_dogs(tmp_path, per_class_train=3, per_class_test=2)
    parts = load_stanford_dogs(tmp_path)
    assert parts.class_names == ["Chihuahua", "Japanese spaniel", "Maltese dog"]
    assert len(parts.train) == 9 and len(parts.test) == 6
    assert parts.test.class_counts().tolist() == [2, 2, 2]
    assert parts.train.paths[3].parent.name == "n02085782-Japanese_spaniel"
    assert parts.train.labels[3] == 1
    assert parts.train.load(0).mode == "RGB"


def test_stanford_dogs_missing_lists(tmp_path):
    (tmp_path / "Images").mkdir()
    with pytest.raises(DataError, match="train_list.mat, test_list.mat"):
        load_stanford_dogs(tmp_path)


def test_flowers102_official_splits(tmp_path):
    make_flowers102(tmp_path, classes=3, per_split=2)
    merged = load_flowers102(tmp_path)
    assert len(merged.train) == 12 and len(merged.test) == 6 and merged.val is None
    assert merged.class_names[:2] == ["pink primrose", "hard-leaved pocket orchid"]
    assert len(merged.class_names) == 102
    official = load_flowers102(tmp_path, official_val=True)
    assert (len(official.train), len(official.val), len(official.test)) == (6, 6, 6)
    assert official.test.class_counts()[:3].tolist() == [2, 2, 2]
    assert official.train.paths[0].name == "image_00001.jpg"


@pytest.mark.parametrize(
    "level,names",
    [("variant", ["707-320", "727-200", "A300B4"]), ("family", ["A300", "Boeing 707", "Boeing 727"]),
     ("manufacturer", ["Airbus", "Boeing"])],
)
def test_fgvc_aircraft_levels(tmp_path, level, names):
    make_fgvc_aircraft(tmp_path, per_split=2)
    parts = load_fgvc_aircraft(tmp_path, level=level)
    assert parts.class_names == names
    assert len(parts.train) == 12 and len(parts.test) == 6
    first_test = parts.test.labels[0]
    expected = {"variant": 0, "family": 1, "manufacturer": 2}[level]
    assert parts.class_names[first_test] == AIRCRAFT[0][expected]


def test_fgvc_aircraft_official_val_and_inner_root(tmp_path):
    make_fgvc_aircraft(tmp_path, per_split=2)
    parts = load_fgvc_aircraft(tmp_path / "fgvc-aircraft-2013b", official_val=True)
    assert (len(parts.train), len(parts.val), len(parts.test)) == (6, 6, 6)


def test_stanford_cars(tmp_path):
    make_stanford_cars(tmp_path)
    parts = load_stanford_cars(tmp_path)
    assert parts.class_names == CAR_CLASSES
    assert len(parts.train) == 9 and len(parts.test) == 6
    assert parts.train.class_counts().tolist() == [3, 3, 3]
    assert parts.test.paths[0].parent.name == "cars_test"


def test_oxford_pets(tmp_path):
    make_oxford_pets(tmp_path)
    parts = load_oxford_pets(tmp_path)
    assert parts.class_names == ["Abyssinian", "American Bulldog", "Bengal"]
    assert len(parts.train) == 6 and len(parts.test) == 6
    assert parts.test.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_image_folder_with_test_root(tmp_path):
    make_image_folder(tmp_path / "train", per_class=4)
    make_image_folder(tmp_path / "test", classes=("cat", "fox"), per_class=2, seed=9000)
    parts = load_image_folder(tmp_path / "train", tmp_path / "test")
    assert parts.class_names == ["cat", "dog", "fox"]
    assert len(parts.train) == 12
    assert parts.test.labels.tolist() == [0, 0, 2, 2]  # indices of the training classes


def test_image_folder_test_class_mismatch(tmp_path):
    make_image_folder(tmp_path / "train", classes=("cat", "dog"))
    make_image_folder(tmp_path / "test", classes=("cat", "wolf"), per_class=1)
    with pytest.raises(DataError, match=r"classes not in .*\['wolf'\].*train has 2 classes"):
        load_image_folder(tmp_path / "train", tmp_path / "test")


def test_kaggle_csv_dog_breed_layout(tmp_path):
    make_kaggle_csv(tmp_path, label_column="breed")
    parts = load_kaggle_csv(tmp_path, CsvConfig(label_column="breed", test_dir="test"))
    assert parts.class_names == ["beagle", "boxer", "pug"]
    assert len(parts.train) == 9 and parts.train.class_counts().tolist() == [3, 3, 3]
    assert parts.train.paths[0].suffix == ".jpg"
    assert parts.test is None
    assert parts.unlabelled.meta["id"].tolist() == ["1", "2", "3", "4"]
    assert (parts.unlabelled.labels == -1).all()


def test_kaggle_csv_ids_with_paths_like_classify_leaves(tmp_path):
    for k in range(4):
        write_image(tmp_path / "images" / f"{k}.jpg", seed=k)
    (tmp_path / "train.csv").write_text("image,label\n" + "".join(
        f"images/{k}.jpg,{'acer' if k % 2 else 'quercus'}\n" for k in range(4)))
    parts = load_kaggle_csv(tmp_path, CsvConfig(file="train.csv", id_column="image", image_dir="images"))
    assert parts.class_names == ["acer", "quercus"]
    assert parts.train.labels.tolist() == [1, 0, 1, 0]
    assert parts.train.paths[2] == tmp_path / "images" / "2.jpg"


def test_kaggle_csv_errors_name_column_and_missing_images(tmp_path):
    make_kaggle_csv(tmp_path, label_column="breed")
    with pytest.raises(DataError, match=r"no column 'label' \(columns: \['id', 'breed'\]\)"):
        load_kaggle_csv(tmp_path, CsvConfig())
    next((tmp_path / "train").iterdir()).unlink()
    with pytest.raises(DataError, match="1 of 9 listed images are missing"):
        load_kaggle_csv(tmp_path, CsvConfig(label_column="breed"))


def test_fashion_mnist_from_debian_gz_layout(tmp_path):
    root = make_fashion_mnist_gz(tmp_path / "fashion-mnist", train=30, test=10)
    parts = load_fashion_mnist(root, cache_dir=tmp_path / "cache")
    assert parts.class_names[0] == "T-shirt/top" and len(parts.class_names) == 10
    assert len(parts.train) == 30 and len(parts.test) == 10
    assert parts.train.labels[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    image = parts.train.load(0)
    assert image.size == (28, 28) and image.mode == "RGB"
    # unpacked once into the cache in torchvision's layout, reused the second time
    raw = tmp_path / "cache" / "fashion-mnist" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    stamp = raw.stat().st_mtime_ns
    load_fashion_mnist(root, cache_dir=tmp_path / "cache")
    assert raw.stat().st_mtime_ns == stamp


def test_fashion_mnist_missing_files_say_apt_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "empty", cache_dir=tmp_path)


def test_elpv_fixture_grades_types_and_fixed_split(tmp_path):
    make_elpv(tmp_path)
    parts = load_elpv(tmp_path)
    assert parts.class_names == GRADE_NAMES
    assert len(parts.train) + len(parts.test) == 32
    assert len(parts.test) == 8 and parts.test.class_counts().tolist() == [2, 2, 2, 2]
    again = load_elpv(tmp_path)
    assert again.test.paths == parts.test.paths
    by_type = load_elpv(tmp_path, label="type")
    assert by_type.class_names == ["mono", "poly"]
    assert by_type.test.class_counts().tolist() == [4, 4]
    assert set(by_type.train.meta["grade"].tolist()) == {0, 1, 2, 3}


def test_elpv_binary_task_and_movable_test_split(tmp_path):
    make_elpv(tmp_path)
    fixed = load_elpv(tmp_path)
    binary = load_elpv(tmp_path, label="binary")
    assert binary.class_names == ["functional", "defective"]
    assert binary.test.paths == fixed.test.paths  # the same cells, another label
    assert binary.test.labels.tolist() == (fixed.test.labels >= 2).astype(int).tolist()
    moved = load_elpv(tmp_path, test_split_seed=7)
    assert moved.test.paths != fixed.test.paths and len(moved.test) == len(fixed.test)
    assert moved.test.class_counts().tolist() == [2, 2, 2, 2]  # still stratified
    assert load_elpv(tmp_path, test_split_seed=7).test.paths == moved.test.paths
    with pytest.raises(ConfigError, match="only elpv draws its own test split"):
        load_config(None, ["data.name=cub200", "data.test_split_seed=3"])


def test_elpv_packaged_real_data():
    """The real 2,624 images the pip package ships: counts per grade and type."""
    parts = load_elpv()
    total = len(parts.train) + len(parts.test)
    assert total == 2624
    counts = parts.train.class_counts() + parts.test.class_counts()
    assert counts.tolist() == [1508, 295, 106, 715]
    binary = load_elpv(label="binary")
    assert (binary.train.class_counts() + binary.test.class_counts()).tolist() == [1508 + 295, 106 + 715]
    assert abs(len(parts.test) / total - 0.25) < 0.01
    # test proportions follow the whole data set's (stratified)
    assert np.allclose(parts.test.class_counts() / len(parts.test), counts / total, atol=0.01)
    image = parts.test.load(0)
    assert image.size == (300, 300)


def test_load_data_val_split_and_class_names_kept(tmp_path):
    make_cub(tmp_path, classes=3, per_class=8)
    splits = load_data(DataConfig(name="cub200", root=tmp_path, val_fraction=0.34, split_seed=1))
    assert splits.class_names[0] == "Bird number 1"
    assert len(splits.train) + len(splits.val) == 15 and len(splits.test) == 9
    assert splits.val.class_counts().tolist() == [2, 2, 2]
    assert not set(splits.train.paths) & set(splits.val.paths)
    assert splits.test.paths == load_source(DataConfig(name="cub200", root=tmp_path)).test.paths


def test_limit_per_class(tmp_path):
    make_image_folder(tmp_path, per_class=6)
    splits = load_data(DataConfig(name="image_folder", root=tmp_path, val_fraction=0, limit_per_class=2))
    assert splits.train.class_counts().tolist() == [2, 2, 2]
    assert splits.val is None
