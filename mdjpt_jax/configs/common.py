"""Preset parsing shared by the config files, in the manner of big_vision's `parse_arg`.

A config file is loaded as `--config=configs/pretrain.py:ARG`; ARG is a comma-separated
list of `name` (a boolean switch set to True) or `name=value` items, for example
`synthetic,no_cda,single_dataset=seed,attention=causal`.
"""

import ml_collections

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _convert(name: str, text: str, default):
    """`text` converted to the type of `default` (bool, int, float or str)."""
    if isinstance(default, bool):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(
            f"config arg {name}={text!r}: expected a boolean "
            f"({'/'.join(_TRUE)} or {'/'.join(_FALSE)})"
        )
    try:
        return type(default)(text)
    except ValueError as error:
        raise ValueError(
            f"config arg {name}={text!r}: expected {type(default).__name__}"
        ) from error


def parse_arg(arg: str | None, **spec) -> ml_collections.ConfigDict:
    """Parses "a,b=1,c=x" against `spec` (name -> default, whose type the value takes).

    Args:
        arg: the text after ':' in `--config=FILE:ARG`, or None / "" for all defaults.
        **spec: every accepted name with its default value.

    Returns:
        A locked ConfigDict with one entry per name of `spec`.

    Raises:
        ValueError: an unknown name, a repeated name, or a value of the wrong type.
    """
    parsed = ml_collections.ConfigDict(spec)
    seen = set()
    for item in (arg or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, _, text = item.partition("=")
        name = name.strip()
        if name not in spec:
            raise ValueError(f"unknown config arg {name!r} in {arg!r}; known: {sorted(spec)}")
        if name in seen:
            raise ValueError(f"config arg {name!r} given twice in {arg!r}")
        seen.add(name)
        if "=" not in item:
            if not isinstance(spec[name], bool):
                raise ValueError(f"config arg {name!r} needs a value: {name}=...")
            text = "true"
        parsed[name] = _convert(name, text.strip(), spec[name])
    parsed.lock()
    return parsed
