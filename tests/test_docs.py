"""The docs cannot go stale: every dotted `overopt.` name in README.md and docs/ exists, every Python block in them
runs (with small stand-ins for the reader's own objects: a trainer, a judge, a toy world and proxy), every docs page
the README names exists, and the README is the front door: the two commands first, then a short page."""
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOTTED = re.compile(r"\boveropt(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def resolves(name: str) -> bool:
    """``overopt.a.b.c``: the longest importable module prefix, then attributes for the rest."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def stale_names(text: str) -> list[str]:
    return sorted({n for n in DOTTED.findall(text) if not resolves(n)})


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_dotted_name_exists(page):
    assert stale_names(page.read_text()) == []


def test_a_stale_name_is_caught():
    text = "Use `overopt.monitor.Monitor`, or `overopt.online.monitor.Monitor` and `overopt.laws.fit`."
    assert stale_names(text) == ["overopt.monitor.Monitor"]


class Trainer:
    """Stands in for a `transformers.Trainer`: keeps the callbacks it is given."""
    def __init__(self):
        self.callbacks = []

    def add_callback(self, cb):
        self.callbacks.append(cb)


def stand_ins() -> dict:
    """The reader's own objects the blocks use: a trainer, a judge and its prompts, a toy world with a proxy."""
    from overopt.config import GoldConfig, load_config
    from overopt.models.reward import build_rm
    from overopt.world.toy import ToyWorld

    world = ToyWorld(load_config("smoke").world, 0)
    return {"trainer": Trainer(), "my_judge": lambda prompts, completions: [0.0] * len(completions),
            "heldout_prompts": ["review of the maple hotel , about the staff :"], "world": world,
            "rm": build_rm(len(world.vocab), 16, 1, world.prompt_len + 25, 0), "gold_cfg": GoldConfig(),
            "gold_norm": (0.0, 1.0)}


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p.read_text())], ids=lambda p: p.name)
def test_every_python_block_runs(page, capsys):
    namespace = stand_ins()
    for i, block in enumerate(python_blocks(page.read_text())):
        try:
            exec(compile(block, f"{page.name} block {i + 1}", "exec"), namespace)
        except Exception as e:  # noqa: BLE001 (the block's own failure, named)
            pytest.fail(f"{page.name}, Python block {i + 1} fails: {type(e).__name__}: {e}")


def test_the_readme_is_the_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < 150
    blocks = [i for i, line in enumerate(lines) if line.startswith("```bash")]
    run, test = lines[blocks[0] + 1], lines[blocks[1] + 1]
    assert blocks[0] < 6 and "overopt run --preset default" in run and "pytest" in test
    assert test in (ROOT / ".ci" / "run").read_text().replace(" -q", "")  # CI runs the README's test command
    first = "\n".join(lines[blocks[1] + 3: blocks[1] + 3 + 40])  # the 40 lines after the two commands
    for must in ("report.html", "claims.csv", "overopt fit", "overopt monitor", "docs/FINDINGS.md"):
        assert must in first, must
    for page in set(re.findall(r"docs/[A-Z]+\.md", "\n".join(lines))):
        assert (ROOT / page).is_file(), page
