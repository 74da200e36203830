"""mdJPT in JAX: multi-dataset joint pre-training of emotional EEG."""

__version__ = "0.1.0"
