"""Random streams are named in one table (`overopt.streams`): one name, one purpose, one id. The code draws every
stream by its name; an id given to two names fails, except the ids `LEGACY_SHARED` records."""
import ast
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from overopt.streams import LEGACY_SHARED, STREAMS, stream_rng, stream_seed

SRC = Path(__file__).resolve().parents[1] / "src" / "overopt"
DRAWS = ("seed", "rng", "stream_seed", "stream_rng")  # Run.seed / Run.rng take the name first, the others second


def undeclared_sharing(streams: dict, legacy: dict) -> list[str]:
    """Each id given to more than one name, unless ``legacy`` records exactly those names for it."""
    names = defaultdict(list)
    for name, i in streams.items():
        names[i].append(name)
    return [f"id {i}: {', '.join(n)}" for i, n in names.items()
            if len(n) > 1 and tuple(sorted(n)) != tuple(sorted(legacy.get(i, ())))]


def drawn(tree: ast.AST) -> list[tuple[int, object]]:
    """(line, the stream argument) of every draw of a stream in a module: a string when named, else the node."""
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        fname = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        if fname in DRAWS and node.args:
            arg = node.args[1] if fname.startswith("stream_") else node.args[0]
            if isinstance(arg, ast.Name) and arg.id == "stream":
                continue  # a wrapper passing its own ``stream`` argument on (Run.seed, Run.rng)
            out.append((node.lineno, arg.value if isinstance(arg, ast.Constant) else arg))
        if fname == "default_rng" and node.args and isinstance(node.args[0], (ast.List, ast.Tuple)):
            out.append((node.lineno, node.args[0]))  # a stream by number, outside the table
    return out


def scan() -> dict[str, list]:
    found = {}
    for p in SRC.rglob("*.py"):
        if p.name != "streams.py":
            found[str(p.relative_to(SRC))] = drawn(ast.parse(p.read_text()))
    return found


def test_no_id_is_shared_beyond_the_recorded_legacy():
    assert undeclared_sharing(STREAMS, LEGACY_SHARED) == []
    for i, names in LEGACY_SHARED.items():  # the record can only shrink: every entry is still shared as it says
        assert sorted(n for n, j in STREAMS.items() if j == i) == sorted(names), i


def test_a_planted_duplicate_id_fails():
    planted = {**STREAMS, "grpo.prompts": STREAMS["rl.prompts"]}
    assert undeclared_sharing(planted, LEGACY_SHARED) == ["id 61: rl.prompts, grpo.prompts"]
    joined = {**STREAMS, "grpo.trainer": 70}  # joining a legacy id is sharing too
    assert undeclared_sharing(joined, LEGACY_SHARED) == [
        "id 70: calibration.order, daa.trainer, iterated.proxy_init, grpo.trainer"]


def test_every_draw_names_a_stream_of_the_table_and_every_stream_is_drawn():
    used = set()
    for path, draws in scan().items():
        for line, arg in draws:
            assert isinstance(arg, str), f"{path}:{line} draws a stream by number, not by name"
            assert arg in STREAMS, f"{path}:{line} names '{arg}', which streams.STREAMS does not list"
            used.add(arg)
    assert set(STREAMS) - used == set(), "streams listed but never drawn"


def test_the_scan_sees_a_stream_drawn_by_number():
    tree = ast.parse("def f(run, c):\n    a = run.seed(62, 3)\n    b = np.random.default_rng([c.run.seed, 5])\n")
    assert [type(arg).__name__ for _, arg in drawn(tree)] == ["int", "List"]


def test_a_named_stream_is_the_numbered_one_it_replaced():
    """The table keeps every stream as it was: the same draws as numpy's SeedSequence of [seed, id, *parts]."""
    assert stream_seed(7, "rl.eval_sampling", 12) == int(np.random.default_rng([7, 62, 12]).integers(2 ** 31))
    assert (stream_rng(0, "pairs.prompts").random(3) == np.random.default_rng([0, 4]).random(3)).all()
    with pytest.raises(KeyError):
        stream_rng(0, "no.such.stream")
