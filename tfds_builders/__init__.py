"""TFDS builders of emotion-EEG datasets, one package per dataset.

Importing this package is cheap: builders are imported (and so registered with TFDS) by
`import_builder(name)`, which `tfds_builders.build` and the input pipeline call.
"""

import importlib

NAMES = (
    "seed",
    "seed_iv",
    "seed_v",
    "seed_vii",
    "faced",
    "deap",
    "dreamer",
    "emoeeg_mc",
    "synthetic_emotion",
)


def import_builder(name: str):
    """Imports `tfds_builders.<name>.<name>_dataset_builder` and returns its `Builder` class."""
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(NAMES)}")
    module = importlib.import_module(f"tfds_builders.{name}.{name}_dataset_builder")
    return module.Builder
