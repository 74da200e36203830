"""Windows of trials and their features: window tables, per-subject blocks, learned and
signal-baseline features of windows, per-subject CDA centroids.

Windows: every trial [C, T] is cut into windows of `window` samples every `step` samples
(`window_table`: one row per window, fields WINDOW_FIELDS); `gather_windows` reads the
[B, C, window] µV arrays of table rows.

Stratified normalization inside the encoder standardizes over the windows of one block,
so a block must hold ONE subject's windows, and enough of them to be representative.
Decision: each subject's windows are put in a seeded random order and cut into blocks of
exactly W windows (W = `windows_per_block`, or all of the subject's windows if fewer);
the last block is the subject's last W windows in that order (it overlaps the previous
block; only its new windows are kept). So every block is a random sample of W windows of
one subject (not one stimulus, whose emotion-specific mean a block of consecutive windows
would normalize away), and shapes stay static. Blocks are independent, so a call packs
`blocks_per_call` blocks of several subjects (`block_calls`; padding, a repeated block whose
outputs are dropped, only in the last call) and splits them over this process's devices
(`learned_features`): throughput, not results.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec
from tqdm import tqdm

from mdjpt_jax import distributed, features, losses, workdir
from mdjpt_jax.models import Encoder

WINDOW_FIELDS = workdir.WINDOW_FIELDS
MODEL_KWARGS = ("n_chans", "n_times", "variant", "attention", "chunk_size")  # Encoder args


# ----------------------------------------------------------------------------- windows


def window_starts(n_times: int, window: int, step: int) -> np.ndarray:
    """Start samples of the windows [start, start + window) fully inside n_times."""
    if n_times < window:
        return np.zeros(0, np.int64)
    return np.arange(0, n_times - window + 1, step, dtype=np.int64)


def window_table(trials: list, window: int, step: int) -> dict:
    """Per-window index table over trials: `trial_index`, `start` and WINDOW_FIELDS, [N] each."""
    rows = {key: [] for key in ("trial_index", "start") + WINDOW_FIELDS}
    for i, trial in enumerate(trials):
        starts = window_starts(trial["eeg"].shape[-1], window, step)
        rows["trial_index"].append(np.full(len(starts), i))
        rows["start"].append(starts)
        for key in WINDOW_FIELDS:
            rows[key].append(np.full(len(starts), int(trial[key])))
    table = {key: np.concatenate(v).astype(np.int64) for key, v in rows.items()}
    if len(table["start"]) == 0:
        raise ValueError(f"no trial is at least {window} samples long; nothing to extract")
    return table


def gather_windows(trials: list, table: dict, rows: np.ndarray, window: int) -> np.ndarray:
    """[len(rows), C, window] float32 EEG of the given window-table rows."""
    return np.stack(
        [
            trials[table["trial_index"][r]]["eeg"][:, s : s + window]
            for r, s in zip(rows, table["start"][rows])
        ]
    ).astype(np.float32)


# ----------------------------------------------------------------------------- DE


# Signal baselines: name -> [B, C, T] µV, fs -> [B, C, ...] features (flattened per window).
SIGNAL_FEATURES = {
    "de": features.differential_entropy,
    "waveform": features.waveform_readout,
}


@functools.partial(jax.jit, static_argnums=(0, 2))
def _signal_flat(signal: str, eeg, fs):
    feats = SIGNAL_FEATURES[signal](eeg, fs)
    return feats.reshape(feats.shape[0], -1)


def subject_alignment_matrices(
    trials: list, table: dict, *, window: int, batch_windows: int
) -> tuple:
    """Per-subject Euclidean-alignment transforms (`features.alignment_matrix`) from each
    subject's own windows, accumulated `batch_windows` at a time.

    Returns:
        (matrices [G, C, C] float64, subjects [G] the sorted subject ids).
    """
    matrices, subjects = [], np.unique(table["subject"])
    for subject in tqdm(subjects, desc="alignment", unit="subject"):
        rows = np.flatnonzero(table["subject"] == subject)
        cov_sum = sum(
            features.window_covariance_sum(
                gather_windows(trials, table, rows[begin : begin + batch_windows], window)
            )
            for begin in range(0, len(rows), batch_windows)
        )
        matrices.append(features.alignment_matrix(cov_sum / len(rows)))
    return np.stack(matrices), subjects


def signal_features(
    trials: list,
    table: dict,
    *,
    signal: str,
    fs: float,
    window: int,
    batch_windows: int,
    euclidean_alignment: bool = False,
) -> np.ndarray:
    """[N, F] features of the signal baseline `signal` (a key of SIGNAL_FEATURES) of every
    window, flattened channel-major (DE: [N, C * 5], channel then band).

    With `euclidean_alignment`, each window is first multiplied by its subject's alignment
    transform (`subject_alignment_matrices`; `features.euclidean_alignment` in batches).
    """
    n = len(table["start"])
    if euclidean_alignment:
        matrices, subjects = subject_alignment_matrices(
            trials, table, window=window, batch_windows=batch_windows
        )
        matrix_of_window = np.searchsorted(subjects, table["subject"])  # [N]
    out = []
    for begin in tqdm(range(0, n, batch_windows), desc=signal, unit="batch"):
        rows = np.arange(begin, begin + batch_windows) % n  # static shape: wrap
        eeg = gather_windows(trials, table, rows, window)
        if euclidean_alignment:
            eeg = np.matmul(matrices[matrix_of_window[rows]], eeg.astype(np.float64))
            eeg = eeg.astype(np.float32)
        feats = np.asarray(_signal_flat(signal, eeg, fs))
        out.append(feats[: min(batch_windows, n - begin)])
    return np.concatenate(out)


# ----------------------------------------------------------------------------- learned


def subject_blocks(n_windows: int, block_size: int, seed: int) -> list:
    """One subject's windows as blocks of exactly min(block_size, n_windows) positions.

    Returns:
        list of (positions [W] into the subject's windows, keep [W] bool): every position
        is kept exactly once over all blocks.
    """
    size = min(block_size, n_windows)
    order = np.random.default_rng(seed).permutation(n_windows)
    blocks = []
    for begin in range(0, n_windows, size):
        if begin + size <= n_windows:
            blocks.append((order[begin : begin + size], np.ones(size, bool)))
        else:  # overlap the previous block; keep only the new windows
            tail = np.arange(n_windows - size, n_windows)
            blocks.append((order[tail], tail >= begin))
    return blocks


def block_calls(table: dict, *, windows_per_block: int, blocks_per_call: int, seed: int) -> list:
    """Every subject's blocks (`subject_blocks`, order seed + subject) packed into calls of
    exactly `blocks_per_call` blocks, across subjects in subject order.

    Blocks of one size share calls (a subject with fewer than W windows has smaller blocks,
    so usually there is one size); each size's last call is filled with padding blocks
    (the last block again, nothing kept).

    Returns:
        list of calls, each a list of S (rows [W] into the table, keep [W] bool); every row
        is kept exactly once over all calls.
    """
    by_size = {}  # block size -> [(rows, keep)] in subject order
    for subject in np.unique(table["subject"]):
        rows = np.flatnonzero(table["subject"] == subject)
        for pos, keep in subject_blocks(len(rows), windows_per_block, seed + int(subject)):
            by_size.setdefault(len(pos), []).append((rows[pos], keep))
    calls = []
    for blocks in by_size.values():
        padding = (blocks[-1][0], np.zeros_like(blocks[-1][1]))  # computed, never kept
        blocks = blocks + [padding] * (-len(blocks) % blocks_per_call)
        calls += [blocks[i : i + blocks_per_call] for i in range(0, len(blocks), blocks_per_call)]
    return calls


def call_size(blocks_per_call: int, num_devices: int) -> int:
    """S, the blocks of every call: blocks_per_call rounded up to a multiple of num_devices."""
    return -(-blocks_per_call // num_devices) * num_devices


def local_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """The "data" mesh over this process's first `num_devices` devices (None: all)."""
    devices = jax.local_devices()
    num_devices = len(devices) if num_devices is None else num_devices
    if not 1 <= num_devices <= len(devices):
        raise ValueError(f"num_devices={num_devices}: this process has {len(devices)} devices")
    return distributed.make_mesh(devices[:num_devices])


@functools.partial(jax.jit, static_argnums=(0, 1))
def _embed_sharded(graphdef: nnx.GraphDef, mesh, state: nnx.State, x: jax.Array) -> jax.Array:
    """encoder.embed of x [S, W, C, T] -> [S, W, D], S split over the mesh's "data" axis:
    each device embeds its own S / devices blocks with the replicated parameters."""

    def local_embed(state, x):
        return nnx.merge(graphdef, state).embed(x)

    data = PartitionSpec(distributed.DATA_AXIS)
    return jax.shard_map(local_embed, mesh=mesh, in_specs=(PartitionSpec(), data), out_specs=data)(
        state, x
    )


def learned_features(
    encoder: Encoder,
    trials: list,
    table: dict,
    *,
    window: int,
    windows_per_block: int,
    blocks_per_call: int,
    seed: int,
    num_devices: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """[N, D] encoder features of every window, S blocks of W windows per call.

    A block holds ONE subject's windows; a call packs blocks of several subjects
    (`block_calls`) and splits them over the devices, so the features do not depend on
    S or on the number of devices (up to float rounding of other shapes: with the same
    blocks per device, bit-identical).

    Args:
        encoder: model with `.embed(x [S, W, C, T]) -> [S, W, D]`.
        trials, table: from `trials.load_trials` and `window_table`.
        window: T samples (must equal encoder.n_times).
        windows_per_block: W.
        blocks_per_call: rounded up to a multiple of the device count (`call_size`; 1:
            one block per device).
        seed: the per-subject window order (seed + subject).
        num_devices: this process's first devices to shard over (None: all local ones).
        progress: show a progress bar.
    """
    mesh = local_mesh(num_devices)
    calls = block_calls(
        table,
        windows_per_block=windows_per_block,
        blocks_per_call=call_size(blocks_per_call, mesh.size),
        seed=seed,
    )
    graphdef, state = nnx.split(encoder)
    state = distributed.replicate(state, mesh)
    x_sharding = NamedSharding(mesh, PartitionSpec(distributed.DATA_AXIS))
    out = np.full((len(table["start"]), encoder.feature_dim), np.nan, np.float32)

    def store(call, feats):  # feats [S, W, D]
        for (rows, keep), f in zip(call, np.asarray(feats)):
            out[rows[keep]] = f[keep]

    pending = None  # the previous call, read back while this one runs
    for call in tqdm(calls, desc="embed", unit="call", disable=not progress):
        x = np.stack([gather_windows(trials, table, rows, window) for rows, _ in call])
        feats = _embed_sharded(graphdef, mesh, state, jax.device_put(x, x_sharding))
        if pending is not None:
            store(*pending)
        pending = (call, feats)
    store(*pending)
    assert not np.isnan(out).any(), "some windows were not embedded"
    return out


def random_encoder(model_kwargs: dict, seed: int) -> Encoder:
    """Same architecture as an exported encoder, parameters from `seed`."""
    return Encoder(**model_kwargs, rngs=nnx.Rngs(params=seed))


@nnx.jit
def _mixed(encoder: Encoder, x: jax.Array) -> jax.Array:
    return encoder(x)["mixed"]


def subject_centroids(
    encoder: Encoder, trials: list, table: dict, *, window: int, windows_per_block: int, seed: int
) -> dict:
    """Per-subject CDA centroids of the mixer output (the quantity the CDA loss aligns).

    For each subject, one block of W of its windows (the first block of `subject_blocks`)
    goes through the encoder; its centroids are the means over the block of the
    zero-diagonal channel covariance ("covariance") and correlation ("correlation", CDA's
    scale-free statistic) of `mixed` (`losses.cda_group_statistics` with one group).

    Returns:
        dict(covariance [G, F, C2, C2], correlation [G, F, C2, C2] float32, subjects [G]).
    """
    stats = {name: [] for name in workdir.CENTROID_STATISTICS}
    subjects = np.unique(table["subject"])
    for subject in subjects:
        rows = np.flatnonzero(table["subject"] == subject)
        positions, _ = subject_blocks(len(rows), windows_per_block, seed + int(subject))[0]
        x = gather_windows(trials, table, rows[positions], window)[None]
        mixed = _mixed(encoder, jnp.asarray(x))[0]  # [W, F, C2, N]
        one_group = jnp.zeros(len(positions), jnp.int32)
        for name in workdir.CENTROID_STATISTICS:
            sums, counts = losses.cda_group_statistics(
                mixed, one_group, 1, scale_free=name == "correlation"
            )
            stats[name].append(np.asarray(sums[0] / counts[0]))
    return dict({name: np.stack(v) for name, v in stats.items()}, subjects=subjects)
