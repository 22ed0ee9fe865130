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
    # the page uses prepare and info, and shows `evaluate --real/--fake` on prepare's sources
    params = [*commands["prepare"].params, *commands["info"].params, *commands["evaluate"].params]
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


def test_extending_page_names_only_code_that_exists():
    """docs/extending.md: its Python blocks parse and their `from ganvas... import` lines
    import; every `ganvas.x.y`, every `Class.attr` of a class it imports or points to by file,
    and every `train.key`-style setting it names exist."""
    import ast
    import dataclasses
    import importlib
    import inspect
    import re
    import textwrap

    page = (DOCS.parent / "extending.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert blocks, "docs/extending.md has no python blocks"
    imported = {}
    for block in blocks:
        for node in ast.walk(ast.parse(textwrap.dedent(block))):
            if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] == "ganvas":
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
                    imported[alias.asname or alias.name] = getattr(module, alias.name)

    def resolve(dotted: str):
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for name in parts[cut:]:
                obj = getattr(obj, name)  # AttributeError: the page names something missing
            return obj
        raise AssertionError(f"docs/extending.md names {dotted}, which does not import")

    # The "before" column of the table of what moved names code that is gone on purpose.
    head, moved = page.split("## What moved where")
    page = head + re.sub(r"(?m)^\|[^|\n]*\|", "|", moved)
    for dotted in set(re.findall(r"`(ganvas(?:\.\w+)+)", page)):
        resolve(dotted)
    # Classes are also known by name from the modules the page points to by path.
    for path in set(re.findall(r"(?:src/ganvas/)?((?:\w+/)*\w+)\.py\b", page)):
        module = "ganvas." + path.replace("/", ".").removesuffix(".__init__")
        if path.split("/")[0] not in ("tests", "benchmarks"):
            for name, obj in vars(importlib.import_module(module)).items():
                if inspect.isclass(obj):
                    imported.setdefault(name, obj)

    def has_member(cls: type, name: str) -> bool:
        if hasattr(cls, name):
            return True
        if dataclasses.is_dataclass(cls) and name in {f.name for f in dataclasses.fields(cls)}:
            return True
        return re.search(rf"self\.{name}\b[^=\n]*=", inspect.getsource(cls)) is not None

    from ganvas.config import load_config

    sections = {k: v for k, v in load_config().to_dict().items() if isinstance(v, dict)}
    for section, key in set(re.findall(r"`(data|optim|loss|train|progressive)\.(\w+)`", page)):
        assert key in sections[section], f"docs/extending.md: no setting {section}.{key}"
    for owner, name in set(re.findall(r"`(\w+)\.(\w+)", page)):
        if inspect.isclass(imported.get(owner)):
            assert has_member(imported[owner], name), f"docs/extending.md: {owner}.{name}?"
