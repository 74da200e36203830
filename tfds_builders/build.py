"""Builds a dataset to array_record, atomically.

  python -m tfds_builders.build NAME --data_dir DIR [--manual_dir DIR] [--config CONFIG|all]
      [--subjects 1-5,8]

The dataset is prepared in a temporary directory beside the target and moved into
`DATA_DIR/NAME/CONFIG/VERSION` only when complete, so a failed build (a missing or
corrupt raw file) leaves nothing behind. Re-running on a complete build does nothing.

By default every subject of the official layout must be present. `--subjects` builds an
explicit subset instead (subject k = the k-th subject of the official order, 1-based; see
`eeg_schema.selected_subjects`): only those subjects' files are read, a missing one still
fails naming it, records keep their full-dataset subject index, and the subset is recorded
as `subjects` in the dataset's metadata. A build directory holding another subset is
refused rather than silently reused.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

import tensorflow_datasets as tfds

import tfds_builders
from tfds_builders.validation import InvalidDataError


def _reader_error(exc: BaseException) -> InvalidDataError | None:
    """The InvalidDataError behind `exc` (TFDS may wrap reader errors), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, InvalidDataError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _is_complete(dataset_dir) -> bool:
    """Whether `<name>/<config>/<version>` holds a finished build (TFDS writes this file last)."""
    return os.path.isfile(os.path.join(dataset_dir, "dataset_info.json"))


def parse_subjects(text: str | None) -> tuple[int, ...] | None:
    """`1-5,8` -> (1, 2, 3, 4, 5, 8); None or empty -> None (every subject)."""
    if not text:
        return None
    numbers = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise ValueError(f"--subjects {text!r}: {part!r} is not N or N-M") from None
        if first < 1 or last < first:
            raise ValueError(f"--subjects {text!r}: {part!r} is not a range of numbers >= 1")
        numbers.update(range(first, last + 1))
    return tuple(sorted(numbers))


def subset_builder(builder_cls, subjects: tuple[int, ...]):
    """A subclass of `builder_cls` (same name, config and data directory) that builds only
    `subjects` (1-based positions; `eeg_schema.selected_subjects`)."""
    return type(
        builder_cls.__name__,
        (builder_cls,),
        {"SELECTED_SUBJECTS": tuple(subjects), "__module__": builder_cls.__module__},
        skip_registration=True,
    )


def build_dataset(
    name: str,
    config: str | None,
    data_dir,
    manual_dir=None,
    subjects: tuple[int, ...] | None = None,
):
    """Builds `name/config` into data_dir (no-op if already built); returns the builder.

    Args:
      subjects: 1-based subject positions of a partial build; None = every subject (strict).

    Raises:
      InvalidDataError: a raw file is missing or invalid (the message names the file).
      ValueError: the build directory holds another subject subset.
    """
    return build_with(
        tfds_builders.import_builder(name), config, data_dir, manual_dir, subjects=subjects
    )


def _recorded_subjects(builder) -> list | None:
    return (builder.info.metadata or {}).get("subjects")


def build_with(
    builder_cls,
    config: str | None,
    data_dir,
    manual_dir=None,
    subjects: tuple[int, ...] | None = None,
):
    """`build_dataset` for a builder class (e.g. one whose sizes a test overrides)."""
    data_dir = os.path.abspath(os.fspath(data_dir))
    if subjects is not None:
        builder_cls = subset_builder(builder_cls, subjects)
    final = builder_cls(config=config, data_dir=data_dir, file_format="array_record")
    if _is_complete(final.data_dir):
        recorded = _recorded_subjects(final)
        wanted = None if subjects is None else list(subjects)
        if recorded != wanted:
            raise ValueError(
                f"{final.data_dir} holds subjects {recorded or 'all'}, not "
                f"{wanted or 'all'}: remove it or build into another --data_dir"
            )
        return final
    os.makedirs(data_dir, exist_ok=True)
    tmp_root = tempfile.mkdtemp(prefix=f".building-{builder_cls.name}-", dir=data_dir)
    try:
        staged = builder_cls(config=config, data_dir=tmp_root, file_format="array_record")
        download_config = tfds.download.DownloadConfig(
            manual_dir=os.fspath(manual_dir) if manual_dir else None
        )
        try:
            staged.download_and_prepare(download_config=download_config)
            if subjects is not None:  # Recorded after preparing: the metadata file is rewritten.
                staged.info.metadata["subjects"] = list(subjects)
                staged.info.write_to_directory(staged.data_dir)
        except Exception as exc:
            reader_error = _reader_error(exc)
            if reader_error is not None and reader_error is not exc:
                raise InvalidDataError(str(reader_error)) from exc
            raise
        os.makedirs(os.path.dirname(final.data_dir), exist_ok=True)
        try:
            os.replace(staged.data_dir, final.data_dir)
        except OSError:
            # Another process (a second host, a parallel test worker) finished the same build.
            if not _is_complete(final.data_dir):
                raise
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return builder_cls(config=config, data_dir=data_dir, file_format="array_record")


def config_names(name: str, config: str | None) -> list[str | None]:
    """`all` -> every BuilderConfig name; None -> the builder's default config."""
    builder_cls = tfds_builders.import_builder(name)
    if config == "all":
        return [c.name for c in builder_cls.BUILDER_CONFIGS]
    return [config]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=tfds_builders.NAMES)
    parser.add_argument("--data_dir", required=True, help="where the built dataset goes")
    parser.add_argument(
        "--manual_dir",
        default=None,
        help="the official download, laid out as the builder's README says",
    )
    parser.add_argument("--config", default=None, help="a config name, or `all`")
    parser.add_argument(
        "--subjects",
        default=None,
        help="build only these subjects, e.g. 1-5,8 (k = the k-th subject of "
        "the official layout); default: every subject, all required",
    )
    args = parser.parse_args(argv)
    subjects = parse_subjects(args.subjects)
    for config in config_names(args.name, args.config):
        builder = build_dataset(args.name, config, args.data_dir, args.manual_dir, subjects)
        counts = {k: v.num_examples for k, v in builder.info.splits.items()}
        print(f"{builder.info.full_name}: {counts} -> {builder.data_dir}")


if __name__ == "__main__":
    main()
