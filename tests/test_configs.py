"""configs/: every preset builds with the documented values; no dead knobs; CLI overrides."""

import pathlib

import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags

from configs import common, demo, downstream, pretrain
from mdjpt_jax import channels, workdir
from mdjpt_jax.pretrain import train
from tfds_builders.synthetic_emotion import simulation

REPO = pathlib.Path(__file__).resolve().parents[1]
PRESETS = (
    None,
    "synthetic",
    "paper",
    "synthetic,no_cda",
    "paper,no_cda",
    "synthetic,single_dataset=d1",
    "paper,single_dataset=seed",
    "synthetic,attention=causal",
    "synthetic,cda_groups=dataset",
    "synthetic,cda_centroid=log_euclidean",
    "paper,attention=causal,cda_groups=dataset",
)


def _leaves(config: ml_collections.ConfigDict, prefix: str = "") -> set:
    names = set()
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            names |= _leaves(value, f"{prefix}{key}.")
        else:
            names.add(f"{prefix}{key}")
    return names


class RecordingConfig:
    """Read-only view of a ConfigDict that records the dotted name of every leaf read."""

    def __init__(self, node, read: set, prefix: str = ""):
        self._node, self._read, self._prefix = node, read, prefix

    def __getattr__(self, name):
        value = self._node[name]
        if isinstance(value, ml_collections.ConfigDict):
            return RecordingConfig(value, self._read, f"{self._prefix}{name}.")
        self._read.add(f"{self._prefix}{name}")
        return value

    __getitem__ = __getattr__

    def keys(self):
        return self._node.keys()


@pytest.mark.parametrize("arg", PRESETS)
def test_every_preset_builds_locked_and_every_field_is_read(arg):
    config = pretrain.get_config(arg)
    with pytest.raises(AttributeError):
        config.train.stepz = 3  # Locked: a misspelt override is an error, not a new key.
    read = set()
    settings = train.read_config(RecordingConfig(config, read))
    assert read == _leaves(config), f"dead knobs: {_leaves(config) - read}"
    assert settings.model["n_chans"] == len(channels.UNIFIED_SETS[config.data.ch_set])
    assert settings.model["n_times"] == round(config.data.window_s * config.data.fs)


def test_paper_preset_has_the_paper_numbers():
    config = pretrain.get_config("paper")
    assert config.data.datasets == (
        "seed/preprocessed",
        "seed_iv/preprocessed",
        "seed_vii/preprocessed",
        "faced/preprocessed",
        "deap/preprocessed",
    )
    assert not any(d.startswith("seed_v/") for d in config.data.datasets)  # held out
    assert (config.data.ch_set, config.data.window_s, config.data.fs) == ("seed60", 5.0, 125.0)
    assert (config.model.variant, config.model.attention) == ("paper", "global")
    assert (config.optim.learning_rate, config.optim.weight_decay) == (5e-4, 1e-4)
    assert (config.loss.temperature, config.loss.cda_weight) == (0.07, 0.01)
    assert config.loss.use_cda and config.train.steps == 20 * 1024
    assert train.read_config(config).model["n_times"] == 625


def test_ablation_switches():
    assert not pretrain.get_config("synthetic,no_cda").loss.use_cda
    assert pretrain.get_config("paper,single_dataset=seed").data.datasets == ("seed/preprocessed",)
    assert pretrain.get_config("single_dataset=d1").data.datasets == ("synthetic_emotion/d1",)
    assert pretrain.get_config("single_dataset=x/y").data.datasets == ("x/y",)
    assert pretrain.get_config("attention=causal").model.attention == "causal"
    assert pretrain.get_config("cda_groups=dataset").loss.cda_groups == "dataset"
    with pytest.raises(ValueError, match="single_dataset='seed_v' matches"):
        pretrain.get_config("paper,single_dataset=seed_v")
    with pytest.raises(ValueError, match="not both"):
        pretrain.get_config("synthetic,paper")
    with pytest.raises(ValueError, match="unknown config arg 'no_cdaa'"):
        pretrain.get_config("no_cdaa")


def test_parse_arg_types_and_errors():
    arg = common.parse_arg("a, n=3,x=0.5,name=seed,b=false", a=False, b=True, n=0, x=1.0, name="")
    assert (arg.a, arg.b, arg.n, arg.x, arg.name) == (True, False, 3, 0.5, "seed")
    assert common.parse_arg(None, n=2).n == 2
    with pytest.raises(ValueError, match="expected int"):
        common.parse_arg("n=two", n=0)
    with pytest.raises(ValueError, match="needs a value"):
        common.parse_arg("n", n=0)
    with pytest.raises(ValueError, match="given twice"):
        common.parse_arg("a,a", a=False)


def test_command_line_overrides():
    argv = [
        "prog",
        f"--config={REPO / 'configs' / 'pretrain.py'}:synthetic,no_cda",
        "--config.train.steps=7",
        "--config.optim.grad_clip_norm=1.5",
        "--config.data.data_dir=/tmp/x",
    ]
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=flag_values, sys_argv=argv)
    flag_values(argv)
    config = flag_values.config
    assert (config.train.steps, config.optim.grad_clip_norm) == (7, 1.5)
    assert config.data.data_dir == "/tmp/x" and not config.loss.use_cda


def test_validate_names_the_numbers():
    settings = train.read_config(pretrain.get_config("synthetic"))
    train.validate(settings, num_devices=2, process_count=1)
    with pytest.raises(
        ValueError,
        match=r"pairs_per_step \(2\) must be divisible by the "
        r"number of devices \(3\)",
    ):
        train.validate(settings, num_devices=3, process_count=1)
    config = pretrain.get_config("synthetic")
    config.data.window_s = 0.333
    with pytest.raises(ValueError, match="not a whole number of samples"):
        train.validate(train.read_config(config), num_devices=1, process_count=1)
    config = pretrain.get_config("synthetic")
    config.train.diagnose_every = -1
    with pytest.raises(ValueError, match=r"diagnose_every \(-1\) must be >= 0"):
        train.validate(train.read_config(config), num_devices=1, process_count=1)


def test_cda_switches():
    config = pretrain.get_config("synthetic,cda_covariance=scrambled,cda_scale_free")
    assert config.loss.cda_covariance == "scrambled" and config.loss.cda_scale_free
    default = pretrain.get_config("synthetic").loss
    assert (default.cda_covariance, default.cda_scale_free) == ("true", False)


def test_method_seeds_default_override_and_validation():
    config = demo.get_config()
    assert workdir.method_seeds(config, "joint") == (0, 1, 2) == tuple(config.seeds)
    assert workdir.method_seeds(config, "joint_no_cda") == (0,)
    for bad in [(1,), (0, 5), ()]:
        with config.unlocked():
            config.method_seeds.joint = bad
        with pytest.raises(ValueError, match=r"method_seeds\['joint'\]"):
            workdir.method_seeds(config, "joint")


def test_demo_runs_share_the_experiments_data_dir_and_heldout_subjects():
    """Overriding the experiment's data_dir or held-out subjects (as `--config.data_dir=...`
    does) reaches every pre-training run: they are references, not copies."""
    config = demo.get_config("family=evoked")
    assert config.target == "synthetic_emotion/e3"
    assert config.pretrain_runs.single.data.datasets == ("synthetic_emotion/e0",)
    with config.unlocked():
        config.data_dir, config.heldout_subjects = "/tmp/elsewhere", 3
    for run in config.pretrain_runs.values():
        resolved = run.copy_and_resolve_references()
        assert (resolved.data.data_dir, resolved.data.heldout_subjects) == ("/tmp/elsewhere", 3)
    with pytest.raises(ValueError, match="family='nope'"):
        demo.get_config("family=nope")
    with pytest.raises(ValueError, match="one synthetic family"):
        pretrain.get_config("evoked,known_answer")


@pytest.mark.parametrize(
    "family, prefix",
    [("evoked", "e"), ("evoked_null", "n"), ("nuisance", "c"), ("nuisance_control", "u")],
)
def test_synthetic_family_presets_resolve_to_configs_0_2_and_target_3(family, prefix):
    sources = tuple(f"synthetic_emotion/{prefix}{i}" for i in range(3))
    assert pretrain.get_config(family).data.datasets == sources
    config = downstream.get_config(family)
    assert (config.sources, config.target) == (sources, f"synthetic_emotion/{prefix}3")
    assert demo.get_config(f"family={family}").synthetic_configs == tuple(
        f"{prefix}{i}" for i in range(4)
    )
    assert {f"{prefix}{i}" for i in range(4)} <= set(simulation.DATASETS)
