"""The package's layout: every import points from a later stage of the pipeline to an earlier one, never back, and
the report and the laws load without torch."""
import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "overopt"
# the stages, earliest first; a module may import from its own stage and earlier ones only
STAGES = [("__init__", "errors", "stats", "streams", "config"), ("world",), ("models",), ("measure",), ("optimizers",),
          ("laws",), ("online",), ("pipeline",), ("studies",), ("report",), ("experiment", "sweep", "cli")]


def _modules() -> dict[str, Path]:
    out = {}
    for p in SRC.rglob("*.py"):
        rel = p.relative_to(SRC).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(("overopt",) + parts)] = p
    return out


def _imports(name: str, path: Path, mods: dict) -> set[str]:
    """Every overopt module ``name`` imports, at the top or inside a function."""
    pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = pkg[: len(pkg) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
    return {m for m in found if m in mods and m != name}


def _stage(name: str) -> int:
    top = name.split(".")[1] if "." in name else "__init__"
    return next(i for i, group in enumerate(STAGES) if top in group)


def test_every_module_has_a_stage():
    for name in _modules():
        assert _stage(name) >= 0, name


def test_imports_point_one_way_and_have_no_cycle():
    mods = _modules()
    graph = {n: _imports(n, p, mods) for n, p in mods.items()}
    upward = [(a, b) for a, deps in graph.items() for b in deps if _stage(b) > _stage(a)]
    assert not upward, f"imports from a later stage into an earlier one: {upward}"
    state = {}

    def visit(v, trail):
        state[v] = "open"
        for w in graph[v]:
            if w.startswith(v + ".") and mods[v].name == "__init__.py":
                continue  # a package re-exporting its own modules
            if state.get(w) == "open":
                raise AssertionError(f"import cycle: {' -> '.join(trail + [w])}")
            if w not in state:
                visit(w, trail + [w])
        state[v] = "done"

    for v in graph:
        if v not in state:
            visit(v, [v])


def test_sizes_stay_readable():
    """No module over 400 lines and no function over 80."""
    for name, p in _modules().items():
        text = p.read_text()
        assert len(text.splitlines()) <= 400, f"{p} has {len(text.splitlines())} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno + 1 <= 80, f"{p}:{node.lineno} {node.name}"


def test_report_and_laws_load_without_torch():
    code = ("import sys, overopt.report.page, overopt.laws, overopt.laws.claims, overopt.laws.curves, overopt.cli; "
            "overopt.cli.build_parser(); print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


PIPELINE = next(i for i, group in enumerate(STAGES) if "pipeline" in group)


def run_context_uses(tree: ast.AST) -> list[str]:
    """Where a module reaches for a run's context (`pipeline.run.Run`) rather than receiving settings: a parameter
    named ``run``, an annotation naming ``Run``, ``run.<x>`` or ``<x>.run.<y>``, any ``.cfg``, any ``.seed(...)``."""
    found = []
    for node in ast.walk(tree):
        where = getattr(node, "lineno", "?")
        if isinstance(node, ast.arg) and (node.arg == "run" or "Run" in ast.unparse(node.annotation or ast.Constant(""))):
            found.append(f"{where}: parameter {node.arg}")
        elif isinstance(node, ast.Attribute):
            v = node.value
            if node.attr == "cfg" or (isinstance(v, ast.Name) and v.id == "run") or \
                    (isinstance(v, ast.Attribute) and v.attr == "run"):
                found.append(f"{where}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "seed":
            found.append(f"{where}: {ast.unparse(node.func)}(...)")
    return found


def test_stages_below_the_pipeline_receive_settings_not_the_run():
    """Settings flow down as frozen objects (`RLSettings`, `EvalSettings`, `IteratedSettings`) and explicit seeds;
    nothing below pipeline/ reads the run's context, whose config, seeds and device it would depend on unseen."""
    bad = {name: uses for name, p in _modules().items() if 0 < _stage(name) < PIPELINE  # config defines run.*
           for uses in [run_context_uses(ast.parse(p.read_text()))] if uses}
    assert not bad, f"the run's context used below pipeline/: {bad}"


def test_the_run_context_rule_sees_a_planted_violation():
    planted = ast.parse("class Evaluator:\n    def __init__(self, run, world):\n        self.run = run\n"
                        "        n = run.cfg.rl.eval_prompts\n        g = self.run.seed(62)\n        d = self.run.device\n"
                        "def f(ctx: 'Run'):\n    return ctx.cfg\n")
    uses = run_context_uses(planted)
    assert any("parameter run" in u for u in uses) and any("parameter ctx" in u for u in uses)
    assert any("self.run.device" in u for u in uses) and any("run.cfg" in u for u in uses)
    assert any(".seed(...)" in u for u in uses)
    assert run_context_uses(ast.parse("def f(x):\n    return x.device, torch.manual_seed(0)\n")) == []


def test_the_layer_test_sees_a_violation(tmp_path):
    """The walker finds an upward import written inside a function (as the old studies' were)."""
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from ..experiment import run_experiment\n")
    mods = {"overopt.world.m": p, "overopt.experiment": p}
    deps = _imports("overopt.world.m", p, mods)
    assert deps == {"overopt.experiment"} and _stage("overopt.experiment") > _stage("overopt.world.m")
