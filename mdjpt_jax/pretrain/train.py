"""The pre-training loop: config -> data, model, optimizer, mesh -> resumable steps.

`run(config, workdir)` is the entry point (main.py --mode=pretrain). It reads every config
field once (`read_config`), validates the combination with the numbers in the messages,
restores the newest checkpoint of WORKDIR/checkpoints if there is one (train state and
data-iterator state: a resumed run reproduces an uninterrupted one exactly), runs the
jitted SPMD step of train_step.py, logs every `log_every` steps (process 0), saves every
`checkpoint_every` steps and at the end, and finally exports the encoder to
WORKDIR/encoder and plots WORKDIR/loss_curve.png. The loop does no math.

Failure policy: a non-finite loss or gradient stops the run with an error naming the step
and the term; finiteness of every step is checked before any later checkpoint is written,
so no checkpoint holds a step at or after the failure. SIGTERM (preemption): the run saves
its current step, waits for the write, and exits with status 143.
"""

import dataclasses
import json
import os
import signal
import sys
import time
from typing import Any, Callable

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

from mdjpt_jax import channels, checkpointing, distributed, learning_curves, optimizer, workdir
from mdjpt_jax.models import Encoder
from mdjpt_jax.pretrain import (
    input_pipeline,
    metrics_writer,
    pretrain_eval,
    remat_choice,
    train_step,
)
from mdjpt_jax.trials import ensure_datasets

PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM
# Fields whose change makes a checkpoint unusable (shapes or meaning of the parameters).
FIXED_ON_RESUME = (
    "model",
    "data.datasets",
    "data.window_s",
    "data.fs",
    "data.ch_set",
    "data.heldout_subjects",
    "data.heldout_subject_ids",
)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the run reads from the config, as plain values (the config stops here)."""

    loader: dict  # keyword arguments of input_pipeline.make_pretrain_loader (no seed)
    model: dict  # Encoder keyword arguments: n_chans, n_times, variant, attention
    loss: dict  # train_step.make_train_step loss keywords
    optim: dict  # optimizer.make_optimizer keywords
    steps: int
    log_every: int
    checkpoint_every: int
    max_to_keep: int
    seed: int
    ch_set: str
    eval_every: int  # 0 = no learning-curve evaluation
    eval_windows_per_subject: int
    diagnose_every: int  # 0 = no CDA diagnostics (train_step.cda_diagnostics)
    memory_budget_gib: float  # per device; steers model.remat_policy="auto" (remat_choice)


def read_config(config) -> Settings:
    """Reads every field of a configs/pretrain.py config exactly once."""
    data, train = config.data, config.train
    ch_names = channels.UNIFIED_SETS.get(data.ch_set)
    if ch_names is None:
        raise ValueError(
            f"data.ch_set={data.ch_set!r}; choose from {sorted(channels.UNIFIED_SETS)}"
        )
    window_s, fs = float(data.window_s), float(data.fs)
    loader = dict(
        datasets=list(data.datasets),
        data_dir=os.path.expanduser(data.data_dir),
        pairs_per_step=data.pairs_per_step,
        windows_per_pair=data.windows_per_pair,
        window_s=window_s,
        fs=fs,
        ch_names=list(ch_names),
        num_threads=data.num_threads,
        prefetch=data.prefetch,
        num_workers=data.num_workers,
        heldout_subjects=data.heldout_subjects,
        heldout_subject_ids=dict(data.heldout_subject_ids),
    )
    model = dict(n_chans=len(ch_names), n_times=int(round(window_s * fs)), **config.model)
    return Settings(
        loader=loader,
        model=model,
        loss=dict(config.loss),
        optim=dict(config.optim, total_steps=train.steps),
        steps=train.steps,
        log_every=train.log_every,
        checkpoint_every=train.checkpoint_every,
        max_to_keep=train.max_to_keep,
        seed=train.seed,
        ch_set=data.ch_set,
        eval_every=train.eval_every,
        eval_windows_per_subject=train.eval_windows_per_subject,
        diagnose_every=train.diagnose_every,
        memory_budget_gib=float(train.memory_budget_gib),
    )


def validate(settings: Settings, *, num_devices: int, process_count: int) -> None:
    """Raises ValueError naming the numbers of an impossible combination."""
    loader = settings.loader
    samples = loader["window_s"] * loader["fs"]
    problems = []
    if abs(samples - round(samples)) > 1e-6:
        problems.append(
            f"data.window_s ({loader['window_s']} s) x data.fs ({loader['fs']} Hz) "
            f"= {samples} is not a whole number of samples"
        )
    if loader["pairs_per_step"] % num_devices:
        problems.append(
            f"data.pairs_per_step ({loader['pairs_per_step']}) must be divisible "
            f"by the number of devices ({num_devices})"
        )
    if loader["pairs_per_step"] % process_count:
        problems.append(
            f"data.pairs_per_step ({loader['pairs_per_step']}) must be divisible "
            f"by the number of processes ({process_count})"
        )
    if settings.eval_every and loader["heldout_subjects"] < 2 and not loader["heldout_subject_ids"]:
        problems.append(
            f"train.eval_every ({settings.eval_every}) > 0 measures the learning curves on "
            f"held-out subjects: data.heldout_subjects ({loader['heldout_subjects']}) must be "
            ">= 2 (or list data.heldout_subject_ids), or set train.eval_every = 0"
        )
    if settings.eval_every < 0 or settings.eval_windows_per_subject < 2:
        problems.append(
            f"train.eval_every ({settings.eval_every}) must be >= 0 and "
            f"train.eval_windows_per_subject ({settings.eval_windows_per_subject}) "
            f">= 2"
        )
    if not settings.memory_budget_gib > 0:
        problems.append(f"train.memory_budget_gib ({settings.memory_budget_gib}) must be > 0")
    if settings.diagnose_every < 0:
        problems.append(f"train.diagnose_every ({settings.diagnose_every}) must be >= 0")
    for name in ("steps", "log_every", "checkpoint_every", "max_to_keep"):
        if getattr(settings, name) < 1:
            problems.append(f"train.{name} ({getattr(settings, name)}) must be >= 1")
    if not 0 <= settings.optim["warmup_steps"] < settings.steps:
        problems.append(
            f"optim.warmup_steps ({settings.optim['warmup_steps']}) must be in "
            f"[0, train.steps ({settings.steps}))"
        )
    if not loader["datasets"]:
        problems.append("data.datasets is empty")
    if problems:
        raise ValueError("invalid pre-training config:\n  " + "\n  ".join(problems))


def _changed_fields(saved: dict, current: dict, prefix: str = "") -> list[str]:
    names = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            names += _changed_fields(a, b, f"{prefix}{key}.")
        elif a != b:
            names.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return names


def check_resumable(saved: dict, current: dict, step: int) -> None:
    """Raises if a field the parameters depend on changed since checkpoint `step`."""
    changes = _changed_fields(saved, current)
    fixed = [c for c in changes if c.startswith(FIXED_ON_RESUME)]
    if fixed:
        raise ValueError(
            f"the checkpoint at step {step} was made with a different "
            f"config: {fixed}; use a new workdir"
        )
    if changes and jax.process_index() == 0:
        print(f"[pretrain] resuming step {step} with changed fields: {changes}", flush=True)


def non_finite_message(step: int, metrics: dict, datasets: list) -> str:
    """Names the non-finite terms of one step's host metrics."""
    terms = [
        f"contrastive of {name} = {value}"
        for name, value in zip(datasets, metrics["contrastive_per_dataset"])
        if not np.isfinite(value)
    ]
    terms += [
        f"{name} = {metrics[name]}"
        for name in ("cda", "grad_norm")
        if not np.isfinite(metrics[name])
    ]
    return (
        f"non-finite loss or gradient at step {step}: {'; '.join(terms) or 'unknown'}. "
        f"No checkpoint was written from step {step} on."
    )


def host_rows(pending: list, datasets: list, chance: float) -> list:
    """Fetches pending (step, device metrics); raises FloatingPointError at a bad step.

    `chance` is the NT-Xent of an uninformative embedding, ln(2M - 1); each row carries
    `contrastive_over_chance`, the mean per-dataset contrastive loss divided by it, and the
    step's diagnostics: `grad_norm/<module>`, `similarity/<statistic>` and, every
    train.diagnose_every steps, `cda_diagnostics/<name>` (train_step.CDA_DIAGNOSTICS).
    """
    rows = []
    for step, metrics in jax.device_get(pending):
        if not metrics["finite"]:
            raise FloatingPointError(non_finite_message(step, metrics, datasets))
        row = {
            k: float(metrics[k])
            for k in ("loss", "contrastive", "cda", "grad_norm", "learning_rate")
        }
        per_dataset = metrics["contrastive_per_dataset"]
        row.update(
            {f"contrastive/{name}": float(value) for name, value in zip(datasets, per_dataset)}
        )
        row["contrastive_over_chance"] = float(np.mean(per_dataset) / chance)
        row.update({f"grad_norm/{k}": float(v) for k, v in metrics["grad_norm_by_module"].items()})
        row.update({f"similarity/{k}": float(v) for k, v in metrics["similarity"].items()})
        row.update(  # measured every diagnose_every steps only (NaN at the others)
            {
                f"cda_diagnostics/{k}": float(v)
                for k, v in metrics["cda_diagnostics"].items()
                if np.isfinite(v)
            }
        )
        rows.append((step, row))
    return rows


class PreemptionFlag:
    """Set by SIGTERM; `agreed()` is True on every process once any process got one."""

    def __init__(self):
        self.raised = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        del signum, frame
        self.raised = True

    def agreed(self) -> bool:
        if jax.process_count() == 1:
            return self.raised
        flags = multihost_utils.process_allgather(np.int32(self.raised))
        return bool(np.max(flags))

    def restore(self) -> None:
        signal.signal(signal.SIGTERM, self._previous)


def named_keys(seed: int) -> dict:
    """One seed split once into the named keys of the run: init, data, step."""
    init, data, step = jax.random.split(jax.random.key(seed), 3)
    return dict(init=init, data=data, step=step)


@dataclasses.dataclass(frozen=True)
class StepProgram:
    """The jitted train step and the abstract arguments it is compiled for.

    One source for the real run (`setup`) and for ahead-of-time compilation (pretrain/aot.py):
    same model, optimizer, mesh, shardings and global batch shapes.

    Attributes:
        graphdef: the encoder's graph definition.
        init: key -> the step-0 TrainState (unsharded; `setup` replicates it).
        step_fn: jitted train_step(state, batch, key) -> (state, metrics).
        state: TrainState of jax.ShapeDtypeStruct, replicated over the mesh.
        batch: name -> jax.ShapeDtypeStruct of the global batch (K, P, ...), the pairs
            (axis 1) split over "data" (input_pipeline.batch_spec with the global P).
        key: jax.ShapeDtypeStruct of the step key (replicated).
    """

    graphdef: nnx.GraphDef
    init: Callable[[jax.Array], train_step.TrainState]
    step_fn: Callable
    state: Any
    batch: dict
    key: jax.ShapeDtypeStruct

    def lower(self):
        """`step_fn.lower` on the abstract arguments (no device memory is touched)."""
        return self.step_fn.lower(self.state, self.batch, self.key)


def make_step_program(settings: Settings, mesh: jax.sharding.Mesh) -> StepProgram:
    """Builds the train step of `settings` on `mesh` and its abstract arguments."""
    tx = optimizer.make_optimizer(**settings.optim)
    schedule = optimizer.learning_rate_schedule(
        **{k: settings.optim[k] for k in ("learning_rate", "warmup_steps", "total_steps")}
    )

    def init(key: jax.Array) -> train_step.TrainState:
        model = Encoder(**settings.model, rngs=nnx.Rngs(params=key))
        return train_step.init_train_state(model, tx)[1]

    abstract_model = nnx.eval_shape(lambda: Encoder(**settings.model, rngs=nnx.Rngs(params=0)))
    graphdef = nnx.split(abstract_model, nnx.Param)[0]
    replicated = distributed.replicated_sharding(mesh)
    key = jax.eval_shape(lambda: jax.random.key(0))
    state = jax.eval_shape(init, key)
    loader = settings.loader
    global_batch = input_pipeline.batch_spec(
        len(loader["datasets"]),
        loader["pairs_per_step"],
        loader["windows_per_pair"],
        len(loader["ch_names"]),
        int(round(loader["window_s"] * loader["fs"])),
    )
    batch_sharding = distributed.batch_sharding(mesh)
    step_fn = train_step.make_train_step(
        graphdef,
        tx,
        mesh,
        **settings.loss,
        learning_rate_fn=schedule,
        diagnose_every=settings.diagnose_every,
    )
    return StepProgram(
        graphdef=graphdef,
        init=init,
        step_fn=step_fn,
        state=jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), state
        ),
        batch={
            name: jax.ShapeDtypeStruct(shape, dtype, sharding=batch_sharding)
            for name, (shape, dtype) in global_batch.items()
        },
        key=jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=replicated),
    )


def make_loader(settings: Settings, data_key: jax.Array) -> input_pipeline.PretrainLoader:
    data_seed = int(jax.random.randint(data_key, (), 0, np.iinfo(np.int32).max))
    return input_pipeline.make_pretrain_loader(
        **settings.loader,
        seed=data_seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )


@dataclasses.dataclass
class Run:
    """The live objects of a run, handed from `run` to `train_loop`."""

    settings: Settings
    directory: str
    mesh: jax.sharding.Mesh
    loader: input_pipeline.PretrainLoader
    manager: object
    step_fn: object
    state: train_step.TrainState  # as restored (or initialised) by `setup`
    step_key: jax.Array
    config_json: dict
    evaluate: Callable[[Any], dict] | None  # params -> learning-curve metrics

    @property
    def windows_per_step(self) -> int:
        loader = self.settings.loader
        return len(loader["datasets"]) * loader["pairs_per_step"] * 2 * loader["windows_per_pair"]

    def save(self, step: int, state: train_step.TrainState) -> None:
        checkpointing.save(
            self.manager, step, state, data_state=self.loader.get_state(), settings=self.config_json
        )


def train_loop(run_: Run) -> train_step.TrainState:
    """Steps from the restored state `run_.state` to `settings.steps`; returns the final
    state (`run_` itself is not modified).

    Every `eval_every` steps (and at step 0 of a fresh run, and at the last step) the
    learning-curve evaluation (`pretrain_eval.evaluate`) is logged with that step's row.
    """
    settings, datasets = run_.settings, run_.settings.loader["datasets"]
    chance = float(np.log(2 * settings.loader["windows_per_pair"] - 1))
    state = run_.state
    step = int(jax.device_get(state.step))
    start_step = step
    writer = metrics_writer.MetricsWriter(
        run_.directory,
        total_steps=settings.steps,
        is_main=jax.process_index() == 0,
        start_step=step,
    )
    preemption = PreemptionFlag()
    pending, last_log = [], (step, time.perf_counter())
    first_done_at = None
    try:
        if step == 0 and run_.evaluate is not None:
            writer.write(0, run_.evaluate(state.params))
        while step < settings.steps:
            with jax.transfer_guard("disallow"):
                batch = distributed.host_batch_to_global(next(run_.loader), run_.mesh)
                state, metrics = run_.step_fn(state, batch, run_.step_key)
            step += 1
            pending.append((step, metrics))
            if first_done_at is None:
                jax.block_until_ready(metrics)
                first_done_at = (step, time.perf_counter())
            preempted = preemption.agreed()
            to_save = step % settings.checkpoint_every == 0 or step == settings.steps or preempted
            to_eval = run_.evaluate is not None and (
                step % settings.eval_every == 0 or step == settings.steps
            )
            if to_save or to_eval or step % settings.log_every == 0:
                rows = host_rows(pending, datasets, chance)  # Raises before save on non-finite.
                pending = []
                now = time.perf_counter()
                rate = run_.windows_per_step * (step - last_log[0]) / (now - last_log[1])
                evaluation = run_.evaluate(state.params) if to_eval else {}
                last_log = (step, time.perf_counter())
                for row_step, row in rows:
                    extra = evaluation if row_step == step else {}
                    if row_step % settings.log_every == 0 or row_step == settings.steps or extra:
                        writer.write(row_step, dict(row, windows_per_s=rate, **extra))
            if to_save:
                run_.save(step, state)
            if preempted:
                run_.manager.wait_until_finished()
                print(
                    f"[pretrain] SIGTERM: saved step {step} in {run_.directory}; re-run the "
                    "same command to resume",
                    file=sys.stderr,
                    flush=True,
                )
                raise SystemExit(PREEMPTED_EXIT_CODE)
    finally:
        preemption.restore()
        run_.loader.close()
        writer.close()
        run_.manager.wait_until_finished()
    _print_speed(run_, first_done_at, step, start_step)
    return state


def _print_speed(run_: Run, first_done_at, step: int, start_step: int) -> None:
    if first_done_at is None or step <= first_done_at[0] or jax.process_index() != 0:
        return
    seconds = (time.perf_counter() - first_done_at[1]) / (step - first_done_at[0])
    print(
        f"[pretrain] steps {start_step}->{step} on {run_.mesh.devices.size} device(s): "
        f"{seconds * 1e3:.1f} ms/step, {run_.windows_per_step / seconds:.1f} windows/s "
        f"(first step with compilation excluded)",
        flush=True,
    )


def setup(config, directory: str) -> tuple[Run, nnx.GraphDef]:
    """Builds everything and restores the newest checkpoint of the workdir if any."""
    settings = read_config(config)
    mesh = distributed.make_mesh()
    validate(settings, num_devices=mesh.devices.size, process_count=jax.process_count())
    ensure_datasets(settings.loader["datasets"], settings.loader["data_dir"])
    config_json = json.loads(config.to_json())
    if jax.process_index() == 0:
        workdir.write_json(workdir.config_path(directory), config_json)
    keys = named_keys(settings.seed)
    loader = make_loader(settings, keys["data"])
    choice = remat_choice.compile_within_budget(settings, mesh, make_step_program)
    settings, program = choice.settings, choice.program
    if jax.process_index() == 0:
        print(f"[pretrain] {remat_choice.describe(choice)}", flush=True)
    graphdef = program.graphdef
    state = distributed.replicate(program.init(keys["init"]), mesh)
    manager = checkpointing.make_manager(
        workdir.checkpoints_dir(directory), max_to_keep=settings.max_to_keep
    )
    latest = manager.latest_step()
    if latest is not None:
        state, data_state, saved = checkpointing.restore(manager, latest, state)
        check_resumable(saved, config_json, latest)
        loader.set_state(data_state)
        if jax.process_index() == 0:
            print(f"[pretrain] resumed from step {latest} of {directory}", flush=True)
    step_key = distributed.replicate(keys["step"], mesh)
    return Run(
        settings,
        directory,
        mesh,
        loader,
        manager,
        choice.compiled,
        state,
        step_key,
        config_json,
        make_evaluator(settings, graphdef),
    ), graphdef


def make_evaluator(settings: Settings, graphdef: nnx.GraphDef):
    """params -> learning-curve metrics on fixed windows of the training datasets' held-out
    subjects (never sampled for training), or None when `eval_every` is 0. Every process
    computes it (cheap, deterministic)."""
    if not settings.eval_every:
        return None
    loader = settings.loader
    window = int(round(loader["window_s"] * loader["fs"]))
    eval_sets = [
        pretrain_eval.make_eval_set(
            dataset,
            loader["data_dir"],
            loader["ch_names"],
            fs=loader["fs"],
            window=window,
            step=max(window // 2, 1),
            windows_per_subject=settings.eval_windows_per_subject,
            seed=settings.seed,
            heldout_subjects=loader["heldout_subjects"],
            heldout_subject_ids=loader["heldout_subject_ids"],
        )
        for dataset in loader["datasets"]
    ]
    return lambda params: pretrain_eval.evaluate(graphdef, params, eval_sets, seed=settings.seed)


def run(config, directory: str) -> str:
    """Pre-trains (or resumes) in the run `directory`; returns the exported encoder directory."""
    run_, graphdef = setup(config, directory)
    try:
        state = train_loop(run_)
    finally:
        run_.manager.close()
    settings, step = run_.settings, int(jax.device_get(state.step))
    encoder_dir = workdir.encoder_dir(directory)
    extra = dict(
        ch_names=settings.loader["ch_names"],
        ch_set=settings.ch_set,
        fs=settings.loader["fs"],
        window_s=settings.loader["window_s"],
        datasets=settings.loader["datasets"],
        # Subjects never sampled in pre-training (heldout.heldout_subjects of this spec).
        heldout_subjects=settings.loader["heldout_subjects"],
        heldout_subject_ids=settings.loader["heldout_subject_ids"],
        step=step,
    )
    checkpointing.export_encoder(
        encoder_dir,
        nnx.merge(graphdef, state.params),
        model_kwargs=settings.model,
        extra=extra,
        config=run_.config_json,
    )
    if jax.process_index() == 0:
        rows = workdir.read_metrics(workdir.metrics_path(directory))
        learning_curves.plot_learning_curves(
            {os.path.basename(os.path.normpath(directory)): rows}, workdir.curve_path(directory)
        )
        print(f"[pretrain] done at step {step}: encoder in {encoder_dir}", flush=True)
    return encoder_dir
