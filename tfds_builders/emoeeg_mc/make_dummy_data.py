"""Writes a fake EmoEEG-MC (ds005540) BIDS download from a seed.

Mirrors the public layout: `README` with per-subject presentation sequences (one subject
in the numbered form, one in the `**subNN**:` / `- Imagery sequence:` form),
`participants.tsv`, `sub-XX/eeg/sub-XX_task-emotion_eeg.edf` (64 EEG channels in the
documented order + one trigger channel, EDF+ annotations) and, for sub-01 only,
`sub-01/sub-01_events.tsv` (sub-02 exercises the EDF-annotation fallback). Each context has
3 one-second trials instead of 21 long ones. No real data.

  python -m tfds_builders.emoeeg_mc.make_dummy_data OUT_DIR [--seed 0]
"""

from __future__ import annotations

import os

import numpy as np

from tfds_builders.emoeeg_mc import emoeeg_mc_dataset_builder as emo
from tfds_builders import dummy_data

FS = 1200.0
SEQUENCES = {
    1: {"vid": ["joy5", "sad4", "neu8"], "ima": ["joy5", "sad4", "neu8"]},
    2: {"vid": ["fear8", "ins4", "ten5"], "ima": ["dis5", "neu4", "joy8"]},
}
TRIAL_S, GAP_S = 1.0, 0.5


def readme_text() -> str:
    s1, s2 = SEQUENCES[1], SEQUENCES[2]
    return "\n".join(
        [
            "# EmoEEG-MC (fake)",
            "",
            "### Trial Reordering",
            "",
            f"`reorder = {list(emo.STIMULI)}`",
            "",
            "### Full Trial Participants",
            "",
            "For participants with complete trials (**sub01-sub54**, same order for imagery and video):",
            "",
            f"1. `{s1['vid']}`",
            "",
            "### Participants with Missing Trials",
            "",
            "- **sub02**:  ",
            "  - Imagery sequence:  ",
            f"    `{s2['ima']}`",
            "  - Video sequence:  ",
            f"    `{s2['vid']}`",
            "",
        ]
    )


def events(number: int) -> list[tuple[float, str]]:
    """(onset s, trial_type) of one fake subject: video block, then imagery block."""
    out, t = [(0.2, "n/a")], 0.5
    for context in ("vid", "ima"):
        for i in range(len(SEQUENCES[number][context])):
            out.append((t, context))
            if context == "ima" and i == 1:  # Imagery ended early by the button press.
                out.append((t + TRIAL_S, "fade"))
                out.append((t + TRIAL_S + 0.2, "rating"))
            else:
                out.append((t + TRIAL_S, "rating"))
            t += TRIAL_S + GAP_S
    return out


def write_edf(path, rng: np.random.Generator, duration_s: float, annotations) -> None:
    """A 64-EEG + 1 trigger channel EDF+ at FS Hz with `annotations` [(onset, description)]."""
    import mne

    n_times = int(FS * duration_s)
    names = [c.capitalize() if c[:2] != "FP" else "Fp" + c[2:].lower() for c in emo.CHANNEL_NAMES]
    info = mne.create_info(names + ["TRIG"], FS, ["eeg"] * len(names) + ["misc"])
    data = rng.normal(0.0, 20e-6, size=(len(names) + 1, n_times))  # Volts, as mne holds EEG.
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_annotations(
        mne.Annotations([a[0] for a in annotations], 0.0, [a[1] for a in annotations])
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mne.export.export_raw(path, raw, fmt="edf", overwrite=True, verbose="error")


def write(root, *, seed: int = 0) -> dict:
    """Writes the fake dataset under `root`; returns {participant: EDF path}."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "README"), "w", encoding="utf-8") as f:
        f.write(readme_text())
    with open(os.path.join(root, "participants.tsv"), "w", encoding="utf-8") as f:
        f.write("participant_id\tage\tsex\nsub-01\t20\tM\nsub-02\t21\tF\n")
    edfs = {}
    for number in SEQUENCES:
        sub = f"sub-{number:02d}"
        evs = events(number)
        edfs[sub] = os.path.join(root, sub, "eeg", f"{sub}_task-emotion_eeg.edf")
        codes = {"n/a": 28, "fade": 30, "rating": 31, "ima": 32, "vid": 33}
        # sub-01: raw trigger codes in the EDF + events.tsv; sub-02: trial types in the EDF only.
        annotations = [(o, str(codes[k]) if number == 1 else k) for o, k in evs]
        write_edf(edfs[sub], rng, evs[-1][0] + 1.0, annotations)
        if number == 1:
            with open(os.path.join(root, sub, f"{sub}_events.tsv"), "w", encoding="utf-8") as f:
                f.write("onset\tduration\tstim_type\ttrial_type\n")
                f.writelines(f"{o}\t0.0\t{codes[k]}\t{k}\n" for o, k in evs)
    return edfs


def main():
    args = dummy_data.dummy_data_args(__doc__, __file__, seed=0)
    print("\n".join(write(args.out_dir, seed=args.seed).values()))


if __name__ == "__main__":
    main()
