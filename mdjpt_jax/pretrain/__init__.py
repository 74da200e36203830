"""Pre-training wing: input pipeline -> train step -> checkpoints, metrics, the exported
encoder (train.run), its held-out evaluation and ahead-of-time compilation."""
