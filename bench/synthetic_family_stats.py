"""What a simulated family offers pre-training: shared waveform, shared band power, emotion.

Per `synthetic_emotion` config, on the stored 125 Hz records projected to the 19 standard
10-20 channels (load_trials, channels.UNIFIED_SETS["standard_1020"]):

    isc_posterior     channel inter-subject correlation: two subjects' same trial
                      (session, stimulus) band-passed 0.5-20 Hz (zero-phase Butterworth),
                      Pearson r per channel, averaged over subject pairs, trials and the
                      posterior channels O1 O2 PZ P3 P4 (the 10-20 set has no OZ); per
                      channel in isc_by_channel
    retrieval         cross-subject retrieval@1 (scoring.cross_subject_retrieval, 16
                      candidates, chance 1/16) of 2 s windows every 1 s, with the
                      flattened features.waveform_readout (0.5-20 Hz, 25 samples/s) and the
                      flattened features.differential_entropy (5 bands x 19 channels);
                      *_interior: the same without each trial's first and last window (the
                      preprocessing's edge transients sit at the same place in every
                      subject's trial and lift DE retrieval by ~0.01 even in a null config)
    emotion_probe     leave-one-subject-out logistic regression (scikit-learn, features
                      standardized per subject) on the emotion label of the same windows,
                      DE and waveform features; chance = the majority label's share. Every
                      subject saw the same few stimuli (2-4 per label), so the effective
                      sample is the stimuli: +-0.1 around chance is noise, and a probe can
                      learn a stimulus's shared waveform rather than its emotion

    python bench/synthetic_family_stats.py --configs e0 n0 --data_dir /tmp/tfds

Configs missing from --data_dir are built first. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

FS = 125.0  # Hz, the stored rate
ISC_BAND_HZ = (0.5, 20.0)
POSTERIOR = ("O1", "O2", "PZ", "P3", "P4")
WINDOW_S, STEP_S = 2.0, 1.0
N_CANDIDATES = 16


def trial_groups(trials: list[dict]) -> dict[tuple[int, int], list[dict]]:
    """(session, stimulus) -> the trials of every subject who saw it, in subject order."""
    groups: dict[tuple[int, int], list[dict]] = {}
    for t in sorted(trials, key=lambda t: t["subject"]):
        groups.setdefault((t["session"], t["stimulus"]), []).append(t)
    return groups


def channel_isc(trials: list[dict], fs: float, band=ISC_BAND_HZ) -> np.ndarray:
    """[C] Pearson r of two subjects' same-trial signals, mean over pairs and trials."""
    from tfds_builders import preprocessing

    per_trial = []
    for group in trial_groups(trials).values():
        x = preprocessing.bandpass(np.stack([t["eeg"] for t in group]), fs, band)  # [S, C, T]
        x = x - x.mean(-1, keepdims=True)
        x = x / np.linalg.norm(x, axis=-1, keepdims=True)
        pairs = [(x[a] * x[b]).sum(-1) for a, b in itertools.combinations(range(len(x)), 2)]
        if pairs:
            per_trial.append(np.mean(pairs, axis=0))
    return np.mean(per_trial, axis=0)


def windows(trials: list[dict], fs: float, window_s=WINDOW_S, step_s=STEP_S):
    """Every window_s window every step_s of every trial.

    Returns:
        eeg [N, C, W] float32, subject [N], moment [N, 3] (session, stimulus, start sample),
        label [N].
    """
    width, step = int(round(window_s * fs)), int(round(step_s * fs))
    eeg, subject, moment, label = [], [], [], []
    for t in trials:
        for start in range(0, t["eeg"].shape[-1] - width + 1, step):
            eeg.append(t["eeg"][:, start : start + width])
            subject.append(t["subject"])
            moment.append((t["session"], t["stimulus"], start))
            label.append(t["label"])
    return (
        np.stack(eeg).astype(np.float32),
        np.array(subject),
        np.array(moment),
        np.array(label),
    )


def standardize_per_subject(x: np.ndarray, subject: np.ndarray) -> np.ndarray:
    """[N, D] z-scored per feature over each subject's own rows."""
    x = np.asarray(x, np.float64).copy()
    for s in np.unique(subject):
        rows = subject == s
        x[rows] = (x[rows] - x[rows].mean(0)) / (x[rows].std(0) + 1e-8)
    return x


def leave_one_subject_out_accuracy(x: np.ndarray, label: np.ndarray, subject: np.ndarray):
    """Accuracy of logistic regression trained on all other subjects, pooled over held-out
    subjects (features standardized per subject first)."""
    from sklearn.linear_model import LogisticRegression

    x = standardize_per_subject(x, subject)
    correct = 0
    for s in np.unique(subject):
        test = subject == s
        clf = LogisticRegression(max_iter=300).fit(x[~test], label[~test])
        correct += int((clf.predict(x[test]) == label[test]).sum())
    return correct / len(label)


def retrieval_scores(by_feature: dict, subject: np.ndarray, moment: np.ndarray) -> dict:
    """Retrieval@1 per feature kind ([N, D] each), on all windows and on the interior ones
    (start neither 0 nor the last start: every trial of a config has the same length)."""
    from mdjpt_jax import scoring

    start = moment[:, 2]
    interior = (start > 0) & (start < start.max())
    scores = {}
    for kind, x in by_feature.items():
        for suffix, rows in (("", slice(None)), ("_interior", interior)):
            scores[kind + suffix] = round(
                scoring.cross_subject_retrieval(
                    x[rows], subject[rows], moment[rows], n_candidates=N_CANDIDATES, seed=0
                ),
                4,
            )
    scores["chance"] = round(1 / N_CANDIDATES, 4)
    return scores


def config_stats(config: str, data_dir: str) -> dict:
    """The numbers of the module docstring for one `synthetic_emotion` config."""
    import jax.numpy as jnp

    from mdjpt_jax import channels, features
    from mdjpt_jax.trials import load_trials

    names = channels.UNIFIED_SETS["standard_1020"]
    trials, _ = load_trials(f"synthetic_emotion/{config}", data_dir, names, fs=FS)
    isc = channel_isc(trials, FS)
    posterior = [names.index(c) for c in POSTERIOR]
    eeg, subject, moment, label = windows(trials, FS)
    waveform = np.asarray(features.waveform_readout(jnp.asarray(eeg), FS)).reshape(len(eeg), -1)
    de = np.asarray(features.differential_entropy(jnp.asarray(eeg), FS)).reshape(len(eeg), -1)
    by_feature = {"waveform": waveform, "de": de}
    return {
        "isc_posterior": round(float(isc[posterior].mean()), 4),
        "isc_by_channel": {names[c]: round(float(isc[c]), 4) for c in posterior},
        "isc_all_channels": round(float(isc.mean()), 4),
        "retrieval": retrieval_scores(by_feature, subject, moment),
        "emotion_probe": {
            **{
                kind: round(leave_one_subject_out_accuracy(x, label, subject), 4)
                for kind, x in by_feature.items()
            },
            "chance": round(float(np.bincount(label).max() / len(label)), 4),
        },
        "n_windows": len(eeg),
        "n_subjects": len(np.unique(subject)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["e0", "n0"])
    parser.add_argument("--data_dir", required=True, help="TFDS data_dir (built when missing)")
    args = parser.parse_args(argv)
    from tfds_builders import build

    results = {}
    for config in args.configs:
        start = time.time()
        with contextlib.redirect_stdout(sys.stderr):  # TFDS prints progress: keep stdout JSON
            build.build_dataset("synthetic_emotion", config, args.data_dir)
        results[config] = config_stats(config, args.data_dir)
        results[config]["seconds"] = round(time.time() - start, 1)
        print(json.dumps({config: results[config]}), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
