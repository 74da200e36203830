# `python -m mdjpt_jax ...` is the `mdjpt ...` command (mdjpt_jax/cli.py). No docstring: absl
# prints the __main__ module's docstring as the usage of a subcommand's flags.

import sys

from mdjpt_jax.cli import main

if __name__ == "__main__":
    sys.exit(main())
