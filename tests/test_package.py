"""The installable package: the `mdjpt` command (mdjpt_jax/cli.py), one version, shipped
configs found by name, light imports, pyproject ranges vs the pinned requirements, and what a
built wheel holds. (scripts/check_install.sh installs a real wheel into a clean venv; CI.)"""

import importlib.metadata
import json
import os
import pathlib
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import mdjpt_jax
from mdjpt_jax import cli

REPO = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
HEAVY_MODULES = ("jax", "flax", "tensorflow_datasets", "mne", "tensorflow")


def _python(code: str, cwd, **env) -> subprocess.CompletedProcess:
    """`python -c CODE` in `cwd` with the checkout importable (not as the working directory)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(REPO), **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _packaged(name: str) -> str:
    return os.path.join(REPO, "mdjpt_jax", "configs", f"{name}.py")


def test_every_mode_of_main_is_a_subcommand():
    from mdjpt_jax import main

    assert set(main.MODE_RUNNERS) == set(cli.SUBCOMMANDS) - {cli.BUILD}
    assert all(text and "\n" not in text for text in cli.SUBCOMMANDS.values())


@pytest.mark.parametrize(
    "subcommand, args, expected",
    [
        (
            "pretrain",
            ["--config=pretrain:synthetic,no_cda", "--config.train.steps=2", "--workdir=w"],
            [f"--config={_packaged('pretrain')}:synthetic,no_cda", "--config.train.steps=2"]
            + ["--workdir=w"],
        ),
        (
            "all",
            ["--config", "demo:tiny", "--workdir", "w"],
            [f"--config={_packaged('demo')}:tiny"] + ["--workdir", "w"],
        ),
        ("report", ["--config=demo"], [f"--config={_packaged('demo')}"]),
        ("all", ["--config=configs/demo.py:tiny"], ["--config=configs/demo.py:tiny"]),
        ("probe", ["-config=/abs/my.py:x=1"], ["--config=/abs/my.py:x=1"]),
        (
            "embed",
            ["--encoder=E", "--input=rec.edf", "--output=o.npz"],
            ["--encoder=E", "--input=rec.edf", "--output=o.npz"],
        ),
    ],
)
def test_subcommand_becomes_the_mode_and_config_names_resolve(subcommand, args, expected):
    assert cli.main_argv(subcommand, args) == [f"--mode={subcommand}", *expected]


def test_config_names_are_the_packaged_files_and_the_root_link_names_them_too():
    path, _, arg = cli.resolve_config("demo:tiny").rpartition(":")
    assert (path, arg) == (_packaged("demo"), "tiny") and os.path.isfile(path)
    assert os.path.samefile(REPO / "configs" / "demo.py", path)  # checkout paths still work
    names = cli.shipped_configs()
    assert {"demo", "pretrain", "downstream"} <= set(names) and "common" not in names
    with pytest.raises(ValueError, match="neither a shipped config"):
        cli.resolve_config("nonexistent:tiny")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["frobnicate"], "unknown subcommand 'frobnicate'"),
        (["embed", "--mode=pretrain"], "the subcommand is the mode"),
        (["pretrain", "--config=paper"], "'paper' is neither a shipped config"),
        ([], "usage: mdjpt SUBCOMMAND"),
    ],
)
def test_usage_errors_exit_2_with_a_message(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_help_lists_every_subcommand_on_one_line(capsys):
    assert cli.main(["--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name, text in cli.SUBCOMMANDS.items():
        assert sum(line.split()[:1] == [name] for line in lines) == 1, name
        assert any(line.split()[:1] == [name] and line.endswith(text) for line in lines)


def test_one_version_for_the_command_the_module_and_the_metadata(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mdjpt-jax {mdjpt_jax.__version__}"
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "mdjpt_jax.__version__"
    }


def test_a_config_by_name_and_its_overrides_reach_main_from_any_directory(tmp_path):
    """The real absl + ml_collections parsing (main.main replaced by a print)."""
    code = (
        "from mdjpt_jax import cli, main\n"
        "main.main = lambda argv: print(main.FLAGS.mode, main.FLAGS.config.train.steps,"
        " main.FLAGS.config.loss.use_cda, main.FLAGS.workdir)\n"
        "cli.main(['pretrain', '--config', 'pretrain:synthetic,no_cda',"
        " '--config.train.steps=3', '--workdir=w'])\n"
    )
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pretrain", "3", "False", "w"]


def test_subcommand_help_lists_the_flags_of_main(tmp_path):
    result = _python("from mdjpt_jax import cli; cli.main(['embed', '--help'])", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage: mdjpt embed" in result.stdout
    assert all(f"--{flag}" in result.stdout for flag in ("encoder", "input", "config"))


def test_import_and_help_import_nothing_heavy(tmp_path):
    code = (
        "import json, runpy, sys\n"
        "import mdjpt_jax\n"
        "light = sorted(m for m in %r if m in sys.modules)\n"
        "sys.argv = ['mdjpt', '--help']\n"
        "try:\n"
        "    runpy.run_module('mdjpt_jax', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "print(json.dumps([light, sorted(m for m in %r if m in sys.modules)]))\n"
    ) % (HEAVY_MODULES, HEAVY_MODULES + ("absl", "ml_collections", "numpy"))
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "subcommands:" in result.stdout
    assert json.loads(result.stdout.splitlines()[-1]) == [[], []]


def _pins(path: pathlib.Path) -> dict:
    """name -> pinned version of a requirements file (following `-r FILE`)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.partition("#")[0].strip()
        if line.startswith("-r "):
            pins.update(_pins(path.parent / line[3:].strip()))
        elif line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _requirements(extra: str | None = None) -> list[Requirement]:
    project = PYPROJECT["project"]
    texts = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(text) for text in texts]


def test_requirements_pins_satisfy_the_pyproject_ranges_and_pin_every_dependency():
    pins = _pins(REPO / "requirements.txt")
    tpu_pins = _pins(REPO / "requirements-tpu.txt")
    extras = list(PYPROJECT["project"]["optional-dependencies"])
    assert set(extras) == {"stream", "bids", "tpu", "dev"}
    declared = set()
    for extra in (None, *extras):
        for requirement in _requirements(extra):
            name = canonicalize_name(requirement.name)
            declared.add(name)
            assert name in pins, f"{requirement} is not pinned in requirements.txt"
            assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]}"
            # A range, not a pin: the next patch release is admitted too.
            assert requirement.specifier.contains(pins[name].rpartition(".")[0] + ".99")
    assert set(pins) == declared, "pins that no pyproject dependency or extra declares"
    # [tpu] is jax's own tpu extra: its libtpu requirement must admit requirements-tpu's pin.
    libtpu = [
        Requirement(text)
        for text in importlib.metadata.requires("jax")
        if text.startswith("libtpu") and 'extra == "tpu"' in text
    ]
    assert libtpu and libtpu[0].specifier.contains(tpu_pins["libtpu"])
    assert set(tpu_pins) - set(pins) == {"libtpu"}


def test_a_missing_extra_names_the_extra_to_install(tmp_path):
    """`mdjpt stream` without mne_lsl (it imports it first thing) and `mdjpt compile`
    without libtpu: exit 2, one line naming the extra, no traceback."""
    for module, argv, extra in (
        ("mne_lsl", ["stream", "--encoder=E", "--probe=P", "--stream_name=S"], "stream"),
        ("libtpu", ["compile", "--config=pretrain:paper", "--topology=v5e:2x2"], "tpu"),
    ):
        code = (
            f"import sys; sys.modules[{module!r}] = None\n"  # import and find_spec: not found
            f"from mdjpt_jax import cli; sys.exit(cli.main({argv!r}))\n"
        )
        result = _python(code, tmp_path, JAX_PLATFORMS="cpu")
        assert result.returncode == 2, result.stderr[-3000:]
        assert f"pip install 'mdjpt-jax[{extra}]'" in result.stderr
        assert "Traceback" not in result.stderr
    assert "mdjpt-jax[bids]" in cli.missing_extra_message("embed", "mne_bids.path")
    assert cli.missing_extra_message("embed", "numpy") is None


def test_a_missing_required_module_is_not_hidden(monkeypatch):
    def run(subcommand, flags):
        raise ModuleNotFoundError("No module named 'scipy'", name="scipy")

    monkeypatch.setattr(cli, "run", run)
    with pytest.raises(ModuleNotFoundError, match="scipy"):
        cli.main(["embed", "--encoder=E"])


def test_a_built_package_holds_configs_builder_metadata_and_the_command(tmp_path):
    """setuptools' egg_info + build_py (what a wheel of this pure-Python package holds),
    built out of the checkout into tmp_path; seconds, no network."""
    pytest.importorskip("setuptools")
    result = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q"]
        + ["egg_info", "--egg-base", str(tmp_path), "build_py", "--build-lib", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    for name in cli.shipped_configs() + ["common"]:
        assert f"mdjpt_jax/configs/{name}.py" in files
    assert {"mdjpt_jax/cli.py", "mdjpt_jax/__main__.py", "mdjpt_jax/models/mdjpt.py"} <= files
    for dataset in ("seed", "faced", "synthetic_emotion"):
        for meta in ("README.md", "CITATIONS.bib", "TAGS.txt"):
            assert f"tfds_builders/{dataset}/{meta}" in files
    assert not any(f.split("/")[0] in ("configs", "tests", "bench") for f in files)
    egg = tmp_path / "mdjpt_jax.egg-info"
    assert f"\nVersion: {mdjpt_jax.__version__}\n" in (egg / "PKG-INFO").read_text()
    assert "mdjpt = mdjpt_jax.cli:main" in (egg / "entry_points.txt").read_text()
