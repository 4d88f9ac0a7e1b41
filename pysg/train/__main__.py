# SPDX-License-Identifier: MIT
"""`python -m pysg.train ARGS` is `pysg train ARGS`: the module torchrun launches,
`torchrun --nproc_per_node N -m pysg.train DATA -o MODEL --backend torch --ddp`."""
import sys

from pysg.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
