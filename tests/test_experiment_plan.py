"""experiment.check_plan: an experiment config is refused before any pre-training step."""

import pytest

from configs import demo, pretrain
from mdjpt_jax import experiment, workdir
from mdjpt_jax.downstream import extract


def _unlinked_run(config, heldout_subjects: int):
    """A pre-training run whose held-out subjects are its own (not a reference to the
    experiment's, as configs/demo.py makes them)."""
    run = pretrain.get_config("synthetic,single_dataset=d0")
    with run.unlocked():
        run.data.data_dir = config.data_dir
        run.data.heldout_subjects = heldout_subjects
    return run


@pytest.fixture
def config(synthetic_data_dir):
    config = demo.get_config("family=synthetic")  # d0-d2 pre-train, d3 (8 subjects) the target
    with config.unlocked():
        config.data_dir = str(synthetic_data_dir)
    return config


def test_the_demo_plan_passes(config):
    experiment.check_plan(config, num_devices=1)
    with pytest.raises(ValueError, match=r"pairs_per_step \(2\) must be divisible .* \(8\)"):
        experiment.check_plan(config)  # the 8 simulated devices of the test session


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda c: setattr(c.fewshot, "n_folds", 5), r"at most 4"),
        (lambda c: setattr(c, "heldout_subjects", 7), r"leaves 1 of its 8 subjects"),
        (
            lambda c: setattr(c.pretrain_runs, "single", _unlinked_run(c, 3)),
            r"holds out \(3, \{\}\)",
        ),
        (lambda c: setattr(c.report, "comparisons", ("joint-dee",)), r"'joint-dee'"),
        (lambda c: setattr(c, "methods", ("de", "joint", "triple")), r"'triple' is neither"),
        (lambda c: setattr(c.extract, "random_like", "double"), r"random_like='double'"),
        (
            lambda c: setattr(c.method_seeds, "joint", (1,)),
            r"method_seeds\['joint'\] = \(1,\) must be a subset",
        ),
    ],
)
def test_an_impossible_plan_is_refused_naming_the_problem(config, change, message):
    with config.unlocked():
        change(config)
    with pytest.raises(ValueError, match=message):
        experiment.check_plan(config, num_devices=1)


def test_random_encoder_needs_no_run_of_its_own_seed(config, monkeypatch):
    """joint pre-trained for seeds (0, 1) only, random for (0, 1, 2): the random encoder of
    seed 2 copies the architecture of joint seed 0 (it used to need joint seed 2 and crash
    after all pre-training)."""
    with config.unlocked():
        config.method_seeds.joint = (0, 1)
    experiment.check_plan(config, num_devices=1)
    opened = []

    def fake_method_encoder(method, run, seed):
        opened.append((method, run, seed))
        raise StopIteration

    monkeypatch.setattr(extract, "method_encoder", fake_method_encoder)
    with pytest.raises(StopIteration):
        extract.method_inputs("random", 2, config, "ROOT")
    assert opened == [("random", workdir.run_dir("ROOT", "joint", 0), 2)]


def test_retrieval_needs_two_heldout_subjects_per_source(config):
    with config.unlocked():
        config.heldout_subjects = 1
    with pytest.raises(ValueError, match=r"d0: the report's retrieval .* needs >= 2"):
        experiment.check_plan(config, num_devices=1)


def test_each_runs_own_config_is_validated(config):
    with config.unlocked():
        config.pretrain_runs.joint.optim.warmup_steps = 10_000
    with pytest.raises(ValueError, match=r"(?s)pretrain_runs.joint: .*warmup_steps \(10000\)"):
        experiment.check_plan(config, num_devices=1)
