from pathlib import Path

from ganvas.config import preset_names
from ganvas.losses import OBJECTIVES
from ganvas.models.registry import list_families

DOCS = Path(__file__).resolve().parents[1] / "docs" / "families.md"


def test_families_page_covers_every_family_preset_and_loss():
    text = DOCS.read_text()
    for name in [*list_families(), *preset_names(), *OBJECTIVES]:
        assert f"`{name}`" in text, f"docs/families.md does not mention {name}"


def test_dataset_workshop_page_names_only_real_prepare_options():
    import re

    import typer

    from ganvas.cli import app

    commands = typer.main.get_command(app).commands
    params = [*commands["prepare"].params, *commands["info"].params]  # the page uses both
    real = {name for param in params for name in (*param.opts, *param.secondary_opts)}
    page = (DOCS.parent / "datasets.md").read_text()
    mentioned = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", page))
    assert mentioned - real == set(), "docs/datasets.md names options prepare lacks"
    # And every workshop option is documented there.
    workshop = {"--every", "--start", "--end", "--trim-borders", "--random-crops", "--mosaic",
                "--drop-blank", "--drop-text", "--blur", "--dedupe", "--grayscale",
                "--classes", "--exclude-classes", "--max-per-class", "--max-per-scene",
                "--scene-distance", "--crop-scale", "--crop-ratio", "--no-resume"}  # fmt: skip
    assert workshop - mentioned == set()
