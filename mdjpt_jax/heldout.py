"""Subjects held out of pre-training.

Every pre-training dataset keeps some of its subjects out of the pre-training sampler
(`input_pipeline`): they are never drawn into a batch. The learning curves
(`pretrain_eval`) and the report's cross-subject retrieval are measured on them only, so
those numbers say how an encoder transfers to people it never saw, not how well it fits
its training subjects. The same subjects are held out for every method and seed of an
experiment, so methods are compared on the same windows.

Which subjects: `explicit[dataset]` (a list of subject ids) when given, else the `count`
highest subject ids of the dataset (a fixed, seed-independent choice).
"""

from typing import Mapping

import numpy as np

MIN_TRAINING_SUBJECTS = 2  # a pre-training pair needs two subjects


def heldout_subjects(
    dataset: str, subjects, *, count: int, explicit: Mapping | None = None
) -> np.ndarray:
    """The held-out subject ids of `dataset` (sorted int64).

    Args:
        dataset: TFDS name "<dataset>/<config>" (the key of `explicit`).
        subjects: the dataset's subject ids (any order, repeats allowed).
        count: how many subjects to hold out when `explicit` names none for the dataset.
        explicit: {dataset: [subject ids]}; an entry overrides `count`.

    Raises:
        ValueError: an unknown subject id, a negative count, or (when any subject is held
            out) fewer than MIN_TRAINING_SUBJECTS subjects left for pre-training.
    """
    subjects = np.unique(np.asarray(subjects, np.int64))
    if explicit is not None and dataset in explicit:
        chosen = np.unique(np.asarray(list(explicit[dataset]), np.int64))
        unknown = np.setdiff1d(chosen, subjects)
        if unknown.size:
            raise ValueError(
                f"{dataset}: held-out subjects {unknown.tolist()} are not in the dataset "
                f"(its subjects: {subjects.tolist()})"
            )
        source = f"data.heldout_subject_ids[{dataset!r}] = {chosen.tolist()}"
    else:
        if count < 0:
            raise ValueError(f"{dataset}: heldout_subjects={count} must be >= 0")
        chosen = subjects[len(subjects) - count :] if count else subjects[:0]
        source = f"heldout_subjects={count}"
    left = len(subjects) - len(chosen)
    if len(chosen) and left < MIN_TRAINING_SUBJECTS:
        raise ValueError(
            f"{dataset}: {source} leaves {left} of its {len(subjects)} subjects for "
            f"pre-training; at least {MIN_TRAINING_SUBJECTS} are needed (hold out at most "
            f"{len(subjects) - MIN_TRAINING_SUBJECTS})"
        )
    return chosen
