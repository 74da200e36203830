"""Reading the EmoEEG-MC (OpenNeuro ds005540) BIDS download: order, events and EDF.

Facts taken from the public ds005540 files (see README.md of this builder):
- `participants.tsv` lists `participant_id` (sub-01 ...).
- `sub-XX/eeg/sub-XX_task-emotion_eeg.edf`: 64 EEG channels (+ trigger channels), with
  triggers in the EDF annotations.
- `sub-XX/sub-XX_events.tsv` (next to, not inside, `eeg/`): onset (s), duration,
  stim_type (trigger code, differs between subjects) and trial_type
  (`vid` = video start, `ima` = imagery start, `fade` = button press ending imagery,
  `rating` = rating screen, `n/a` = other).
- The stimulus presented in each trial is not in any events file: the dataset README lists
  each subject's presentation sequence (e.g. `['joy5', 'ins5', ...]`).
"""

from __future__ import annotations

import ast
import csv
import re

import numpy as np

from tfds_builders import validation
from tfds_builders.validation import fail

CONTEXTS = ("vid", "ima")  # Session 0 = video context (mdJPT's), 1 = imagery context.
START_TYPES = {"vid": "vid", "ima": "ima"}
_LIST_RE = re.compile(r"`(\[[^`\]]*\])`")
_NUMBERED_RE = re.compile(r"^\s*(\d+)\.\s*`\[")
_SUBJECT_RE = re.compile(r"\*\*sub-?(\d+)", re.IGNORECASE)


def read_participants(path) -> list[str]:
    """`participants.tsv` -> participant ids (e.g. ['sub-01', ...]) in file order."""
    rows = read_tsv(path)
    if not rows or "participant_id" not in rows[0]:
        fail(path, "missing column 'participant_id'")
    return [r["participant_id"].strip() for r in rows]


def read_tsv(path) -> list[dict]:
    """A BIDS .tsv as a list of row dicts; raises naming the file."""
    validation.require_file(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        fail(path, f"unreadable TSV ({e})")


def _contexts_of(line: str, default: tuple[str, ...]) -> tuple[str, ...]:
    low = line.lower()
    has_ima, has_vid = "imagery" in low, "video" in low
    if has_ima and has_vid:
        return CONTEXTS
    if has_ima:
        return ("ima",)
    if has_vid:
        return ("vid",)
    return default


def parse_sequences(path) -> dict[tuple[int, str], list[str]]:
    """Dataset README -> {(subject number, context): presentation sequence of stimulus names}.

    Understands the README's three forms: numbered lines `N. `[...]`` (both contexts),
    `**subNN Imagery sequence**:` / `**subNN Video sequence**:` headers, and `**subNN**:`
    headers followed by `- Imagery sequence:` / `- Video sequence:` lines. The `reorder`
    list (canonical order, not a subject's) is ignored.
    """
    validation.require_file(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    sequences, subject, contexts = {}, None, CONTEXTS
    for line in lines:
        numbered = _NUMBERED_RE.match(line)
        header = _SUBJECT_RE.search(line)
        if numbered:
            subject, contexts = int(numbered.group(1)), CONTEXTS
        elif header:
            subject, contexts = int(header.group(1)), _contexts_of(line, CONTEXTS)
        else:
            contexts = _contexts_of(line, contexts)
        listed = _LIST_RE.search(line)
        if listed and subject is not None and "reorder" not in line.lower():
            try:
                names = [str(n) for n in ast.literal_eval(listed.group(1))]
            except (ValueError, SyntaxError) as e:
                fail(
                    path, f"cannot parse the sequence for sub{subject:02d}: {listed.group(1)} ({e})"
                )
            for context in contexts:
                sequences[(subject, context)] = names
            if numbered:
                subject = None
    if not sequences:
        fail(path, "no per-subject presentation sequences found (expected the ds005540 README)")
    return sequences


def events_from_tsv(path) -> list[tuple[float, str]]:
    """events.tsv -> sorted (onset s, trial_type) pairs; requires onset and trial_type."""
    rows = read_tsv(path)
    if not rows:
        fail(path, "no events")
    validation.check_keys(list(rows[0]), ["onset", "trial_type"], path)
    events = []
    for i, row in enumerate(rows):
        try:
            onset = float(row["onset"])
        except (TypeError, ValueError):
            fail(path, f"row {i + 2}: onset {row['onset']!r} is not a number")
        if not np.isfinite(onset) or onset < 0:
            fail(path, f"row {i + 2}: onset {onset} is not a finite time >= 0")
        events.append((onset, (row["trial_type"] or "").strip().lower()))
    return sorted(events)


def trial_windows(events, path) -> dict[str, list[tuple[float, float]]]:
    """(onset, trial_type) events -> per context the [start, end) seconds of each trial.

    A video trial runs from its `vid` event to the next `rating`; an imagery trial from
    its `ima` event to the first `fade` (early button press) or else the next `rating`.
    """
    windows = {c: [] for c in CONTEXTS}
    for i, (onset, kind) in enumerate(events):
        if kind not in START_TYPES:
            continue
        end = None
        for later, later_kind in events[i + 1 :]:
            if later_kind in START_TYPES:
                break
            if later_kind == "rating" or (kind == "ima" and later_kind == "fade"):
                end = later
                break
        if end is None or end <= onset:
            fail(
                path,
                f"{kind} trial starting at {onset:.3f} s has no following "
                f"{'fade/' if kind == 'ima' else ''}rating event",
            )
        windows[START_TYPES[kind]].append((onset, end))
    return windows
