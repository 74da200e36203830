"""`model.remat_policy="auto"`: the fastest rematerialization policy whose compiled train
step fits `train.memory_budget_gib` per device.

The order is measured, not assumed (README "Rematerialization", `bench/train_bench.py
--remat_policies`): at the issue shape on a CPU, `dots` 11.3 s < `full` 12.4 s < `none`
17.0 s per step, and `none` also needs the most memory (15.8 GiB against 4.9 and 0.9), so
it is never the choice. Each candidate is compiled for the run's own devices and mesh
(the step a run executes, or the compile mode's TPU topology) and its buffer assignment
(`step_memory_bytes`) compared with the budget; the first that fits is kept together with
its executable, so choosing costs a compile only when a faster candidate does not fit.
"""

import dataclasses

import jax

from mdjpt_jax.models.mlla import REMAT_POLICIES

# Fastest first (measured); "none" is slower than both and needs the most memory.
AUTO_ORDER = ("dots", "full")
AUTO = "auto"
GIB = 1024**3


def step_memory_bytes(compiled) -> dict:
    """Per-device bytes of a compiled step (XLA buffer assignment): arguments, outputs,
    donated aliases, temporaries, generated code and their total = arguments + outputs -
    aliased + temporaries + code."""
    memory = compiled.memory_analysis()
    parts = dict(
        arguments=int(memory.argument_size_in_bytes),
        outputs=int(memory.output_size_in_bytes),
        aliased=int(memory.alias_size_in_bytes),
        temporaries=int(memory.temp_size_in_bytes),
        code=int(memory.generated_code_size_in_bytes),
    )
    total = (
        parts["arguments"]
        + parts["outputs"]
        - parts["aliased"]
        + parts["temporaries"]
        + parts["code"]
    )
    return dict(parts, total=total)


def compiler_out_of_memory(error: Exception) -> bool:
    """True for a compiler that refuses the program for lack of memory (the TPU compiler
    raises RESOURCE_EXHAUSTED instead of returning an oversized program)."""
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


class NoPolicyFits(ValueError):
    """model.remat_policy="auto" and no candidate's compiled step fits the budget."""


@dataclasses.dataclass(frozen=True)
class Choice:
    """What `compile_within_budget` chose.

    Attributes:
        settings: the run's settings with model.remat_policy set to the chosen policy.
        program: train.StepProgram of that policy.
        compiled: its compiled step (callable like program.step_fn).
        tried: one dict per candidate compiled: policy, bytes per device (None when the
            compiler refused it for lack of memory) and whether it fits.
    """

    settings: object
    program: object
    compiled: object
    tried: list


def compile_within_budget(settings, mesh, make_step_program) -> Choice:
    """Compiles the step of `settings` on `mesh`, resolving remat_policy "auto".

    Args:
        settings: train.Settings; settings.model["remat_policy"] is "auto" or a policy of
            REMAT_POLICIES; settings.memory_budget_gib the per-device budget.
        mesh: the run's mesh.
        make_step_program: (settings, mesh) -> train.StepProgram (passed in: this module is
            imported by train, not the other way round).

    Returns:
        Choice. An explicit policy is compiled and kept whatever its memory (the budget
        steers "auto" only; `tried` still reports it).

    Raises:
        ValueError: an unknown policy.
        NoPolicyFits: "auto" and no candidate fits the budget (the message names each
            candidate's bytes).
    """
    requested = settings.model["remat_policy"]
    if requested != AUTO and requested not in REMAT_POLICIES:
        raise ValueError(
            f"model.remat_policy={requested!r}; choose {AUTO!r} or one of {REMAT_POLICIES}"
        )
    budget = settings.memory_budget_gib * GIB
    tried = []
    for policy in AUTO_ORDER if requested == AUTO else (requested,):
        candidate = dataclasses.replace(settings, model=dict(settings.model, remat_policy=policy))
        program = make_step_program(candidate, mesh)
        try:
            compiled = program.lower().compile()
        except jax.errors.JaxRuntimeError as error:
            if requested != AUTO or not compiler_out_of_memory(error):
                raise
            tried.append(dict(policy=policy, bytes=None, fits=False))
            continue
        total = step_memory_bytes(compiled)["total"]
        tried.append(dict(policy=policy, bytes=total, fits=total <= budget))
        if requested != AUTO or total <= budget:
            return Choice(candidate, program, compiled, tried)
    sizes = ", ".join(_candidate_text(t) for t in tried)
    raise NoPolicyFits(
        f"model.remat_policy='auto': no policy fits train.memory_budget_gib="
        f"{settings.memory_budget_gib:g} per device ({sizes}); lower data.pairs_per_step or "
        "data.windows_per_pair, use more devices, or raise the budget if the device has "
        "the memory"
    )


def describe(choice: Choice) -> str:
    """One line for the log: the chosen policy and what each candidate needed."""
    parts = ", ".join(_candidate_text(t) for t in choice.tried)
    return (
        f"remat_policy {choice.settings.model['remat_policy']} "
        f"(per device: {parts}; budget {choice.settings.memory_budget_gib:g} GiB)"
    )


def _candidate_text(tried: dict) -> str:
    if tried["bytes"] is None:
        return f"{tried['policy']} refused by the compiler (out of memory)"
    return f"{tried['policy']} {tried['bytes'] / GIB:.2f} GiB"
