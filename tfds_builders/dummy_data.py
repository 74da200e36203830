"""Helpers for the `make_dummy_data.py` scripts that write fake official files (no pytest)."""

from __future__ import annotations

import os
import pickle


def write_pickle(path, obj, *, protocol: int = 2) -> str:
  """Pickles `obj` to `path` (folders created); protocol 2 is what Python 2 can read.

  Returns:
    `path` as a str.
  """
  path = os.fspath(path)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "wb") as f:
    pickle.dump(obj, f, protocol=protocol)
  return path
