"""Builds a dataset to array_record, atomically.

  python -m tfds_builders.build NAME --data_dir DIR [--manual_dir DIR] [--config CONFIG|all]

The dataset is prepared in a temporary directory beside the target and moved into
`DATA_DIR/NAME/CONFIG/VERSION` only when complete, so a failed build (a missing or
corrupt raw file) leaves nothing behind. Re-running on a complete build does nothing.
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


def build_dataset(name: str, config: str | None, data_dir, manual_dir=None):
  """Builds `name/config` into data_dir (no-op if already built); returns the builder.

  Raises:
    InvalidDataError: a raw file is missing or invalid (the message names the file).
  """
  return build_with(tfds_builders.import_builder(name), config, data_dir, manual_dir)


def build_with(builder_cls, config: str | None, data_dir, manual_dir=None):
  """`build_dataset` for a builder class (e.g. one whose sizes a test overrides)."""
  data_dir = os.path.abspath(os.fspath(data_dir))
  final = builder_cls(config=config, data_dir=data_dir, file_format="array_record")
  if _is_complete(final.data_dir):
    return final
  os.makedirs(data_dir, exist_ok=True)
  tmp_root = tempfile.mkdtemp(prefix=f".building-{builder_cls.name}-", dir=data_dir)
  try:
    staged = builder_cls(config=config, data_dir=tmp_root, file_format="array_record")
    download_config = tfds.download.DownloadConfig(
        manual_dir=os.fspath(manual_dir) if manual_dir else None)
    try:
      staged.download_and_prepare(download_config=download_config)
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
  parser.add_argument("--manual_dir", default=None,
                      help="the official download, laid out as the builder's README says")
  parser.add_argument("--config", default=None, help="a config name, or `all`")
  args = parser.parse_args(argv)
  for config in config_names(args.name, args.config):
    builder = build_dataset(args.name, config, args.data_dir, args.manual_dir)
    counts = {k: v.num_examples for k, v in builder.info.splits.items()}
    print(f"{builder.info.full_name}: {counts} -> {builder.data_dir}")


if __name__ == "__main__":
  main()
