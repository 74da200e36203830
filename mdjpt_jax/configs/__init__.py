"""The shipped configs: `mdjpt --config=NAME[:ARG]` (e.g. `pretrain:paper`, `demo:tiny`) finds
`mdjpt_jax/configs/NAME.py`; from a checkout `--config=configs/NAME.py[:ARG]` names the same
file (the root `configs` is a link to this folder). Each preset file defines
`get_config(arg)`; they import each other as `mdjpt_jax.configs.*` because ml_collections
loads a config file by path, outside any package.
"""
