from pathlib import Path

from ganvas.config import preset_names
from ganvas.losses import OBJECTIVES
from ganvas.models.registry import list_families

DOCS = Path(__file__).resolve().parents[1] / "docs" / "families.md"


def test_families_page_covers_every_family_preset_and_loss():
    text = DOCS.read_text()
    for name in [*list_families(), *preset_names(), *OBJECTIVES]:
        assert f"`{name}`" in text, f"docs/families.md does not mention {name}"
