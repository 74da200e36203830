"""The original PyTorch mdJPT train step, timed for bench/train_bench.py (--torch_original).

Nothing of the original code is in this repository: `load` imports it at run time from the
user's own clone of ncclab-sustech/mdJPT_nips2025 (its `src/` package and
`cfgs_multi/config_multi.yaml`), and `bench_step` times its own `MultiModel_PL`:
`training_step` (channel projection, per-dataset `forward`, per-dataset SimCLR NT-Xent summed
+ CDA_factor x CDA) + `loss.backward()` + the `Adam(lr, weight_decay)` of its
`configure_optimizers`, as Lightning's automatic optimization runs them (zero_grad with
set_to_none, training_step, backward, step). Needs torch (not a project requirement):

    python -m venv /tmp/venv-torch
    /tmp/venv-torch/bin/pip install -r requirements.txt torch==2.13.0
    git clone https://github.com/ncclab-sustech/mdJPT_nips2025 /path/to/mdJPT_nips2025

Import-time shims (the original's files are not edited):
    pytorch_lightning  if not installed: a stub whose LightningModule is a torch nn.Module
                       (log / log_dict do nothing, as Lightning's do outside a Trainer);
    timm               if not installed: a stub DropPath (only built for drop_path > 0,
                       which the model never uses);
    to_patch           the original allocates the patch tensor with `.to('cuda')`; the shim is
                       the same slice-copy loop on the input's device (CPU here);
    log_dict           replaced on the instance by a no-op in any case (no logging time).

Variants (`variant`):
    published   the code as released. Its `MLLAEncoderLayer.forward` ends in `return src`
                (the input of the attention, after in_proj + depthwise conv + SiLU), so the
                attention, the output projection, cpe2 and the FFN are computed in the
                forward pass but are dead: no backward through them, their parameters get no
                gradient (the original trains with ddp_find_unused_parameters_true) and Adam
                skips them.
    full_block  the same model with the layer returning its full output
                `x + cpe2(x) + FFN(LN2(x))`, x = shortcut + out_proj(attn * gate): the block
                that mdjpt_jax.models.MLLABlock computes, so both frameworks do the same work.
                Only this layer's forward is replaced (written here against its attributes).
"""

import contextlib
import os
import re
import statistics
import sys
import time
import types

import numpy as np
import torch

VARIANTS = ("published", "full_block")


def set_threads(n: int) -> None:
    """Intra-op (and, when still possible, inter-op) threads of torch."""
    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # only settable before any parallel work
        torch.set_num_interop_threads(n)


def _stub_missing(name: str, build) -> str:
    """Imports `name`, or registers the stub modules `build()` returns; says which."""
    try:
        __import__(name)
        return "installed"
    except ImportError:
        for mod_name, attrs in build().items():
            mod = types.ModuleType(mod_name)
            mod.__dict__.update(attrs)
            sys.modules[mod_name] = mod
        return "stub"


def _lightning_stub():
    class LightningModule(torch.nn.Module):
        def log(self, *args, **kwargs):
            pass

        def log_dict(self, *args, **kwargs):
            pass

    return {"pytorch_lightning": dict(LightningModule=LightningModule)}


def _timm_stub():
    class DropPath(torch.nn.Module):
        def __init__(self, *args, **kwargs):
            raise NotImplementedError("timm stub: DropPath with drop_path > 0")

    return {"timm": {}, "timm.models": {}, "timm.models.layers": dict(DropPath=DropPath)}


def _to_patch_on_input_device(data, patch_size=50, stride=25):
    """The original `to_patch` (zeros, then one slice copy per patch) without `.to('cuda')`."""
    batchsize, timelen, _ = data.shape
    num_patches = (timelen - patch_size) // stride + 1
    patches = torch.zeros(
        (batchsize, num_patches, patch_size), device=data.device, dtype=data.dtype
    )
    for i in range(num_patches):
        start = i * stride
        patches[:, i, :] = data[:, start : start + patch_size, 0]
    return patches


def _full_block_forward(self, src, prev=None, key_padding_mask=None, attn_mask=None):
    """MLLAEncoderLayer returning its full output (see the module docstring), no mask/prev."""
    src = src + self.cpe1(src.permute(0, 2, 1)).permute(0, 2, 1)
    shortcut = src
    src = self.norm1(src)
    act_res = self.act(self.act_proj(src))
    src = self.in_proj(src)
    src = self.act(self.dwc(src.permute(0, 2, 1))).permute(0, 2, 1)
    attended = self.self_attn(src, src, src)[0]
    out = shortcut + self.out_proj(attended * act_res)
    out = out + self.cpe2(out.permute(0, 2, 1)).permute(0, 2, 1)
    return out + self.ff(self.norm2(out))


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class _Namespace(types.SimpleNamespace):
    """Attribute access over nested dicts (what the original reads from its OmegaConf cfg)."""

    @classmethod
    def of(cls, value):
        if isinstance(value, dict):
            return cls(**{k: cls.of(v) for k, v in value.items()})
        if isinstance(value, list):
            return [cls.of(v) for v in value]
        if isinstance(value, str) and _FLOAT.fullmatch(value):
            return float(value)  # PyYAML reads 5e-4 as a string; OmegaConf as a float
        return value


def load(repo: str) -> dict:
    """Imports the original's model classes from a clone at `repo`; returns handles + shims."""
    repo = os.path.abspath(repo)
    if not os.path.isfile(os.path.join(repo, "src", "model", "MultiModel_PL.py")):
        raise SystemExit(
            f"--torch_original {repo}: no src/model/MultiModel_PL.py there "
            "(clone ncclab-sustech/mdJPT_nips2025)"
        )
    shims = dict(
        pytorch_lightning=_stub_missing("pytorch_lightning", _lightning_stub),
        timm=_stub_missing("timm", _timm_stub),
    )
    if repo not in sys.path:
        sys.path.insert(0, repo)
    from src.model import MLLA_new  # noqa: PLC0415 (the user's clone, at run time)
    from src.model.MultiModel_PL import MultiModel_PL  # noqa: PLC0415

    MLLA_new.to_patch = _to_patch_on_input_device
    shims["to_patch"] = "same loop on the input's device (original: .to('cuda'))"
    import yaml  # noqa: PLC0415

    with open(os.path.join(repo, "cfgs_multi", "config_multi.yaml")) as f:
        config = yaml.safe_load(f)
    return dict(
        repo=repo,
        MultiModel_PL=MultiModel_PL,
        layer=MLLA_new.MLLAEncoderLayer,
        published_forward=MLLA_new.MLLAEncoderLayer.forward,
        config=config,
        shims=shims,
    )


def _cfg(config: dict, n_datasets: int, n_chans: int, window_s: float, fs: float):
    """The original's cfg for the MLLA encoder: its config_multi.yaml, K datasets whose
    channels are the unified set (so channel_project is a per-channel copy)."""
    model = config["model"]
    channels = list(model["MLLA"]["uni_channels"])
    if len(channels) != n_chans:
        raise ValueError(
            f"the original's unified montage has {len(channels)} channels, the case has {n_chans}"
        )
    model["MLLA"]["cnn"]["extract_mode"] = config["val"]["extractor"]["fea_mode"]
    data = [
        dict(
            dataset_name=f"d{i}",
            channels=channels,
            n_channs=n_chans,
            timeLen=int(window_s),
            fs=int(fs),
        )
        for i in range(n_datasets)
    ]
    if data[0]["timeLen"] * data[0]["fs"] != round(window_s * fs):
        raise ValueError("the original needs a whole number of seconds per window")
    model["encoder"] = "MLLA"
    return _Namespace.of(
        dict(model=model, train=config["train"], data_cfg_list=data, data_0=data[0])
    )


def _flop_counter():
    try:
        from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415

        return FlopCounterMode(display=False)
    except ImportError:
        return None


def bench_step(
    handles: dict,
    variant: str,
    *,
    n_datasets: int,
    windows: int,
    n_chans: int,
    window_s: float,
    fs: float,
    reps: int,
    seed: int = 0,
) -> dict:
    """Builds MultiModel_PL, warms one step (forward FLOPs counted there), times `reps` steps.

    The batch per dataset is the original's: 2 subjects x `windows` windows, subject 1 in
    the first half (what its stratified norm and SimCLR labels assume), [1, 2W, 1, C, T].
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}")
    layer = handles["layer"]
    layer.forward = handles["published_forward"] if variant == "published" else _full_block_forward
    cfg = _cfg(handles["config"], n_datasets, n_chans, window_s, fs)
    torch.manual_seed(seed)
    cwd = os.getcwd()
    os.chdir(handles["repo"])  # MultiModel_PL loads 'channel_interpolate.npy' from the cwd
    try:
        model = handles["MultiModel_PL"](cfg)
    finally:
        os.chdir(cwd)
    model.log_dict = lambda *args, **kwargs: None
    model.train()
    optimizer = model.configure_optimizers()["optimizer"]
    n_times = int(round(window_s * fs))
    rng = np.random.default_rng(seed)
    x_list = [
        torch.from_numpy(
            rng.standard_normal((1, 2 * windows, 1, n_chans, n_times)).astype(np.float32)
        )
        for _ in range(n_datasets)
    ]
    batch = (x_list, [None] * n_datasets)

    def step(counter=None):
        optimizer.zero_grad(set_to_none=True)
        with counter if counter is not None else contextlib.nullcontext():
            loss = model.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    params = list(model.parameters())
    # Forward (+ losses) only: FlopCounterMode's convolution_backward formula ignores groups
    # (a depthwise Conv1d(128, 128, 3, groups=128) backward counts ~64x its FLOPs).
    counter = _flop_counter()
    start = time.perf_counter()
    loss = step(counter)
    first_s = time.perf_counter() - start
    with_grad = [p for p in params if p.grad is not None]
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    windows_per_step = n_datasets * 2 * windows
    return dict(
        variant=variant,
        batch_shape=[n_datasets, 1, 2 * windows, 1, n_chans, n_times],
        windows_per_step=windows_per_step,
        params=sum(p.numel() for p in params),
        params_trainable=sum(p.numel() for p in params if p.requires_grad),
        params_with_grad=sum(p.numel() for p in with_grad),
        forward_matmul_conv_gflop=(
            round(counter.get_total_flops() / 1e9, 1) if counter is not None else None
        ),
        first_step_s=round(first_s, 2),
        step_s_median=round(median, 3),
        step_s_all=[round(t, 3) for t in times],
        windows_per_s=round(windows_per_step / median, 1),
        loss=loss,
        finite=bool(np.isfinite(loss)),
    )


def describe(handles: dict) -> dict:
    """What the JSON says about the torch side."""
    return dict(
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        torch_interop_threads=torch.get_num_interop_threads(),
        mkldnn=torch.backends.mkldnn.is_available(),
        repo=handles["repo"],
        shims=handles["shims"],
    )
