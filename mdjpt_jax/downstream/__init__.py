"""Downstream wing: extract features of frozen encoders -> probe / finetune -> report.
Reads what pre-training wrote through `workdir` (files only, no pre-training import)."""
