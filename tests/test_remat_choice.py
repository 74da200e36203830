"""model.remat_policy="auto": the fastest policy whose compiled step fits the budget."""

import dataclasses

import jax
import numpy as np
import pytest

from configs import pretrain
from mdjpt_jax import distributed
from mdjpt_jax.pretrain import remat_choice, train

GIB = remat_choice.GIB


@pytest.fixture(scope="module")
def mesh():
    return distributed.make_mesh(jax.devices()[:1])


def _with(settings, **changes):
    model = {k: changes.pop(k) for k in list(changes) if k == "remat_policy"}
    return dataclasses.replace(settings, model=dict(settings.model, **model), **changes)


class _CompiledOnce:
    """train.make_step_program whose programs compile once per policy (the choice logic is
    under test, not XLA; each compile takes ~10-30 s here)."""

    def __init__(self):
        self.compiled = {}

    def __call__(self, candidate, mesh_):
        program = train.make_step_program(candidate, mesh_)
        policy = candidate.model["remat_policy"]
        cache = self.compiled

        class Program:
            def lower(self):
                return self

            def compile(self):
                if policy not in cache:
                    cache[policy] = program.lower().compile()
                return cache[policy]

        return Program()


@pytest.fixture(scope="module")
def make_program():
    return _CompiledOnce()


@pytest.fixture(scope="module")
def explicit_bytes(settings, mesh, make_program):
    """Compiled bytes per device of each candidate, chosen explicitly."""
    return {
        policy: remat_choice.compile_within_budget(
            _with(settings, remat_policy=policy), mesh, make_program
        ).tried[0]["bytes"]
        for policy in remat_choice.AUTO_ORDER
    }


def test_paper_default_is_auto_within_one_v5e_chip():
    config = pretrain.get_config("paper")
    assert config.model.remat_policy == "auto"
    assert train.read_config(config).memory_budget_gib == 16.0
    assert pretrain.get_config("synthetic").model.remat_policy == "full"


@pytest.fixture(scope="module")
def settings():
    config = pretrain.get_config("synthetic")
    config.data.windows_per_pair = 4
    config.model.remat_policy = "auto"
    return train.read_config(config)


def test_auto_keeps_the_first_policy_that_fits_and_its_executable(settings, mesh):
    choice = remat_choice.compile_within_budget(settings, mesh, train.make_step_program)
    assert choice.settings.model["remat_policy"] == "dots"
    assert [t["policy"] for t in choice.tried] == ["dots"]  # full was never compiled
    assert settings.model["remat_policy"] == "auto"  # the input is not modified
    # The kept executable is the step of the chosen policy: same numbers as its jitted step.
    state = distributed.replicate(choice.program.init(jax.random.key(0)), mesh)
    host = {k: np.zeros(v.shape, v.dtype) for k, v in choice.program.batch.items()}
    host["eeg"] = np.random.default_rng(0).standard_normal(host["eeg"].shape).astype(np.float32)
    batch = distributed.host_batch_to_global(host, mesh)
    key = distributed.replicate(jax.random.key(1), mesh)
    expected = jax.device_get(choice.program.step_fn(jax.tree.map(np.copy, state), batch, key))
    got = jax.device_get(choice.compiled(state, batch, key))
    jax.tree.map(np.testing.assert_array_equal, got, expected)


def test_auto_falls_back_to_full_when_dots_exceeds_the_budget(
    settings, mesh, explicit_bytes, make_program
):
    # Keeping the matmul outputs needs more memory than recomputing them.
    assert explicit_bytes["dots"] > explicit_bytes["full"]
    budget = (explicit_bytes["dots"] + explicit_bytes["full"]) / 2 / GIB
    choice = remat_choice.compile_within_budget(
        _with(settings, memory_budget_gib=budget), mesh, make_program
    )
    assert choice.settings.model["remat_policy"] == "full"
    assert choice.tried == [
        dict(policy="dots", bytes=explicit_bytes["dots"], fits=False),
        dict(policy="full", bytes=explicit_bytes["full"], fits=True),
    ]
    assert "remat_policy full" in remat_choice.describe(choice)


def test_auto_with_no_fitting_policy_names_every_candidate(
    settings, mesh, explicit_bytes, make_program
):
    budget = explicit_bytes["full"] / 2 / GIB
    with pytest.raises(remat_choice.NoPolicyFits) as error:
        remat_choice.compile_within_budget(
            _with(settings, memory_budget_gib=budget), mesh, make_program
        )
    for policy in ("dots", "full"):
        assert f"{policy} {explicit_bytes[policy] / GIB:.2f} GiB" in str(error.value)


def test_explicit_policy_is_kept_over_the_budget(settings, mesh, explicit_bytes, make_program):
    choice = remat_choice.compile_within_budget(
        _with(settings, remat_policy="dots", memory_budget_gib=1e-6), mesh, make_program
    )
    assert choice.settings.model["remat_policy"] == "dots"
    assert choice.tried == [dict(policy="dots", bytes=explicit_bytes["dots"], fits=False)]


def test_a_compiler_out_of_memory_moves_on_to_the_next_policy(settings, mesh, make_program):
    """A TPU compiler refuses an oversized program (RESOURCE_EXHAUSTED) instead of
    returning it: auto treats that as not fitting."""

    class Refused:
        def lower(self):
            return self

        def compile(self):
            raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Ran out of memory on HBM")

    def make_step_program(candidate, mesh_):
        if candidate.model["remat_policy"] == "dots":
            return Refused()
        return make_program(candidate, mesh_)

    choice = remat_choice.compile_within_budget(settings, mesh, make_step_program)
    assert choice.settings.model["remat_policy"] == "full"
    assert choice.tried[0] == dict(policy="dots", bytes=None, fits=False)
    assert "dots refused by the compiler" in remat_choice.describe(choice)


def test_unknown_policy_and_non_positive_budget_are_refused(settings, mesh):
    with pytest.raises(ValueError, match="choose 'auto' or one of"):
        remat_choice.compile_within_budget(
            _with(settings, remat_policy="some"), mesh, train.make_step_program
        )
    with pytest.raises(ValueError, match="memory_budget_gib"):
        train.validate(_with(settings, memory_budget_gib=0.0), num_devices=1, process_count=1)
