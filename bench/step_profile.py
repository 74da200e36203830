"""Where a compiled step's time goes: one step under `jax.profiler.trace`, summarised.

Used by `bench/train_bench.py --profile`. XLA:CPU records one trace event per executed
thunk (a fusion, a matmul, a copy...) on the thread that runs it; this reads the perfetto
JSON the profiler writes and splits the step's wall time into three exclusive parts:

    matmul        some matmul is running (XLA:CPU's YNNPACK `ynn_fusion`s, `dot`s,
                  convolutions): the part the FLOP floor speaks about;
    other_only    only non-matmul work runs (elementwise fusions, copies/transposes,
                  reductions): time the floor does not count;
    idle          no thunk runs (scheduling, loop control, waiting between thunks; a
                  loop's own event, which spans its body, does not count as work).

Thread-seconds per kind and the top operations (numeric suffixes merged, e.g. the 225
`ynn_fusion.88` of a lax.map body are one row) come with it. Tracing adds overhead (tens
of thousands of events), so the traced step is slower than an untraced one; read shares,
not absolute seconds.
"""

import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

import jax

# Trace events that are not thunks: runtime bookkeeping and Python frames.
_NOT_THUNKS = (
    "$",
    "ThunkExecutor",
    "SlinkyThreadPool",
    "ThreadpoolListener",
    "end: ",
    "PjitFunction",
    "Common",
    "Handle ",
    "Allocate",
    "Wait ",
    "ParseArguments",
    "PythonRefManager",
)


def kind_of(name: str) -> str:
    """matmul | layout | reduce | control | elementwise, from an XLA:CPU thunk name."""
    base = re.sub(r"\.\d+$", "", name)
    if base.startswith(("ynn_fusion", "dot", "convolution", "onednn", "custom-call")):
        return "matmul"
    if base.startswith(("while", "call", "conditional")):
        return "control"
    if "transpose" in base or "copy" in base:
        return "layout"
    if "reduce" in base or base.startswith(("all-", "collective")):
        return "reduce"
    return "elementwise"


def _union_s(intervals: list) -> float:
    """Total length in s of the union of (start_us, end_us) intervals."""
    total, end = 0.0, None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            total, end = total + (stop - start), stop
        elif stop > end:
            total, end = total + (stop - end), stop
    return total / 1e6


def summarize(trace_dir: str, top: int = 12) -> dict:
    """The summary (module docstring) of the newest perfetto trace under `trace_dir`."""
    paths = glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True)
    if not paths:
        raise FileNotFoundError(f"{trace_dir}: no perfetto_trace.json.gz (profiler output)")
    with gzip.open(max(paths, key=os.path.getmtime)) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    # (kind, operation without its numeric suffix, start µs, end µs) of every thunk.
    thunks = [
        (kind_of(e["name"]), re.sub(r"\.\d+$", "", e["name"]), e["ts"], e["ts"] + e["dur"])
        for e in events
        if e.get("ph") == "X" and not e["name"].startswith(_NOT_THUNKS)
    ]
    if not thunks:
        raise ValueError(f"{trace_dir}: the trace has no XLA thunk events")
    wall = (max(end for *_, end in thunks) - min(start for _, _, start, _ in thunks)) / 1e6
    # A loop's thunk spans its body's thunks, which are events of their own.
    busy = _union_s([(start, end) for kind, _, start, end in thunks if kind != "control"])
    matmul_s = _union_s([(start, end) for kind, _, start, end in thunks if kind == "matmul"])
    thread_s, count, by_op = (collections.Counter() for _ in range(3))
    for kind, operation, start, end in thunks:
        thread_s[kind] += (end - start) / 1e6
        count[kind] += 1
        by_op[operation] += (end - start) / 1e6
    return dict(
        traced_wall_s=round(wall, 3),
        matmul_s=round(matmul_s, 3),
        other_only_s=round(busy - matmul_s, 3),
        idle_s=round(wall - busy, 3),
        shares=dict(
            matmul=round(matmul_s / wall, 3),
            other_only=round((busy - matmul_s) / wall, 3),
            idle=round((wall - busy) / wall, 3),
        ),
        thunks=len(thunks),
        thread_s_by_kind={k: round(v, 3) for k, v in thread_s.most_common()},
        thunks_by_kind=dict(count.most_common()),
        top_ops=[[name, round(s, 3)] for name, s in by_op.most_common(top)],
    )


def profile_step(step, state, *args) -> tuple:
    """Runs `step(state, *args)` once under the profiler.

    Returns:
        (the new state, summarize()'s dict + `traced_call_s`, the call's wall time).
    """
    with tempfile.TemporaryDirectory(prefix="mdjpt_profile_") as trace_dir:
        start = time.perf_counter()
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            state, metrics = step(state, *args)
            jax.block_until_ready(metrics)
        elapsed = time.perf_counter() - start
        return state, dict(summarize(trace_dir), traced_call_s=round(elapsed, 3))
