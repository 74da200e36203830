"""`synthetic_emotion`: small simulated emotion-EEG datasets, the embedded default.

Configs d0..d5 are six datasets with different caps, native rates, subjects, sessions,
stimuli and label sets (see simulation.DATASETS); records are stored at 125 Hz after the
standard preprocessing. Needs no manual download. Demo convention: d0, d1, d2 pre-train,
d3 is the held-out target. k0..k3 (known-answer benchmark), e0..e5 (evoked-response
benchmark: the emotion in the shape of stimulus-locked evoked responses), n0..n5 (its null
control: private event trains), c0..c3 (the nuisance family: e0..e3 plus stimulus-locked
blinks whose size and relation to valence differ by dataset) and u0..u3 (its control: the
same blinks in every dataset) repeat these designs; see README.md.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import eeg_schema
from tfds_builders import preprocessing
from tfds_builders.synthetic_emotion import simulation


@dataclasses.dataclass
class SyntheticConfig(eeg_schema.EegConfig):
    """A simulated dataset: `seed` fixes every sample."""

    seed: int = 0


def _description(s: simulation.DatasetSpec) -> str:
    """One line: the design, for the evoked family what is shared between viewers, and the
    blinks of the nuisance family."""
    design = (
        f"{len(s.channels)} ch at {s.fs:g} Hz -> 125 Hz, {s.n_subjects} subjects x "
        f"{s.n_sessions} sessions x {s.stimuli_per_session} stimuli of {s.trial_s:g} s, "
        f"labels {', '.join(s.labels)}"
    )
    if s.emotion_code != "evoked":
        return design
    if not s.shared_events:
        return f"{design}; null control: evoked responses to private event trains"
    design = f"{design}; evoked responses to event trains shared by every viewer"
    if not s.nuisance_uv:
        return design
    return (
        f"{design}; blinks at the stimulus's scene cuts, {s.nuisance_uv:g} µV x "
        f"(1 {s.nuisance_valence:+g} valence)"
    )


class Builder(tfds.core.GeneratorBasedBuilder):
    """Simulated multi-dataset emotion EEG (stimulus-locked latent dynamics)."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [
        SyntheticConfig(name=name, description=_description(spec))
        for name, spec in simulation.DATASETS.items()
    ]

    @property
    def spec(self) -> simulation.DatasetSpec:
        return simulation.DATASETS[self.builder_config.name]

    def _info(self) -> tfds.core.DatasetInfo:
        spec = self.spec
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=eeg_schema.trial_features(len(spec.channels), spec.labels),
            metadata=eeg_schema.metadata(
                spec.channels,
                self.builder_config.target_fs,
                spec.labels,
                {label: simulation.valence_class(label) for label in spec.labels},
                native_sampling_rate=spec.fs,
                seed=self.builder_config.seed,
            ),
            homepage="https://arxiv.org/abs/2510.22197",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Simulated: nothing to download.
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        spec, cfg, name = self.spec, self.builder_config, self.builder_config.name
        for subject in eeg_schema.selected_subjects(self, spec.n_subjects):
            for session in range(spec.n_sessions):
                stimuli = simulation.session_stimuli(spec, cfg.seed, name, session)
                for trial, stimulus in enumerate(stimuli):
                    eeg = simulation.simulate_trial(
                        spec, cfg.seed, name, subject, session, trial, stimulus
                    )
                    eeg = preprocessing.preprocess_trial(
                        eeg, spec.fs, target_fs=cfg.target_fs, band=cfg.band
                    )
                    label = simulation.stimulus_label(spec, stimulus)
                    key = f"sub{subject:02d}_ses{session}_trial{trial:02d}"
                    yield (
                        key,
                        {
                            "eeg": eeg.astype(np.float32),
                            "subject": subject,
                            "session": session,
                            "trial": trial,
                            "stimulus": stimulus,
                            "label": label,
                            "valence": simulation.valence_class(spec.labels[label]),
                            "source_file": "simulated",
                            "key": key,
                        },
                    )
