"""The tree's rule, read from every import with `ast`: no wing (pretrain, downstream,
inference) imports another wing, and the ground floor imports no wing; main.py and
experiment.py orchestrate the wings and may import them all."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "mdjpt_jax"
WINGS = ("pretrain", "downstream", "inference")
ORCHESTRATORS = ("main", "experiment")


def imported_modules(source: str) -> list[str]:
    """Dotted names of the mdjpt_jax modules a source imports (absolute imports only)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in names if name.split(".")[0] == "mdjpt_jax"]


def wing_of(dotted: str) -> str | None:
    """ "mdjpt_jax.<wing>..." -> wing; a ground-floor module -> None."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in WINGS else None


def violations(module: str, source: str) -> list[str]:
    """The imports of `module` ("mdjpt_jax/<path>" without .py) that break the rule."""
    if module.split("/")[-1] in ORCHESTRATORS and module.count("/") == 1:
        return []
    own = wing_of(module.replace("/", "."))
    bad = []
    for name in imported_modules(source):
        wing = wing_of(name)
        if wing is not None and wing != own:
            where = f"the {own} wing" if own else "the ground floor"
            bad.append(f"{module}: {where} imports {name}")
    return bad


def test_no_wing_imports_another_and_the_ground_floor_imports_none():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 30
    problems = []
    for path in modules:
        module = str(path.relative_to(PACKAGE.parent).with_suffix(""))
        problems += violations(module, path.read_text())
    assert not problems, "\n".join(problems)


def test_the_check_flags_offending_imports():
    assert violations("mdjpt_jax/inference/lsl", "from mdjpt_jax.downstream import probe\n")
    assert violations("mdjpt_jax/pretrain/train", "import mdjpt_jax.inference.embedding\n")
    assert violations("mdjpt_jax/windows", "def f():\n    from mdjpt_jax.pretrain import aot\n")
    assert violations("mdjpt_jax/heads", "from mdjpt_jax import downstream\n")
    assert not violations("mdjpt_jax/downstream/probe", "from mdjpt_jax.downstream import folds\n")
    assert not violations("mdjpt_jax/experiment", "from mdjpt_jax.pretrain import train\n")
