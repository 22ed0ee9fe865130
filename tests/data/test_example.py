import numpy as np

from ganvas.data.example import load_example_arrays, write_example_dataset
from ganvas.data.store import load_dataset


def test_builtin_emoji_ship_with_labels():
    images, labels, classes, names = load_example_arrays()
    assert images.shape == (1911, 64, 64, 3) and images.dtype == np.uint8
    assert len(classes) == 10 and "Animals & Nature" in classes
    assert labels.min() == 0 and labels.max() == 9 and len(names) == len(images)
    # Composited over white: the corners of most emoji are background.
    assert np.median(images[:, 0, 0]) == 255


def test_example_dataset_dir_at_32px(tmp_path):
    written = write_example_dataset(tmp_path / "emoji", size=32)
    dataset = load_dataset(tmp_path / "emoji")
    assert dataset.images.shape == (1911, 32, 32, 3)
    assert dataset.classes == written.classes and len(dataset.classes) == 10
    assert (tmp_path / "emoji" / "preview.png").is_file()
    assert dataset.manifest["content_hash"].startswith("sha256:")
