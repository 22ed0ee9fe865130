from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from ganvas.cli import app
from ganvas.data.card import dataset_card, write_card_previews
from ganvas.data.prepare import prepare_dataset
from ganvas.data.store import load_dataset


def _source(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for cls, count in (("cats", 5), ("dogs", 3)):
        (root / "src" / cls).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "src" / cls / f"{i}.png")
    (root / "src" / "cats" / "broken.png").write_bytes(b"not a png")
    (root / "src" / "dogs" / "notes.txt").write_text("hello")
    return root / "src"


def test_card_counts_classes_sources_and_drops(tmp_path):
    prepare_dataset(_source(tmp_path), tmp_path / "data", size=16, labels="subfolders",
                    val_fraction=0.25, workers=1, progress=False)  # fmt: skip
    card = dataset_card(tmp_path / "data")
    assert card["images"] == 8 and card["resolution"] == 16 and card["val_images"] == 2
    assert card["per_class"] == {"cats": 5, "dogs": 3}
    assert sum(card["per_source"].values()) == 8
    assert card["dropped"] == 2 and sum(card["dropped_per_reason"].values()) == 2
    written = write_card_previews(load_dataset(tmp_path / "data"), tmp_path / "sheets")
    assert [p.name for p in written] == ["preview.png", "classes.png"]
    with Image.open(written[1]) as sheet:
        assert sheet.height == 2 + 2 * 18  # one row per class


def test_info_command(tmp_path):
    prepare_dataset(_source(tmp_path), tmp_path / "data", size=16, labels="subfolders",
                    workers=1, progress=False)  # fmt: skip
    result = CliRunner().invoke(app, ["info", str(tmp_path / "data"), "--out-dir", str(tmp_path / "s")],
                                env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "8 images" in result.output
        and "cats" in result.output
        and "dropped because" in result.output
    )
    assert (tmp_path / "s" / "classes.png").is_file()
    result = CliRunner().invoke(app, ["info", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "ganvas prepare" in result.output
