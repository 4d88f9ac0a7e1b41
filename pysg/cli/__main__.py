# SPDX-License-Identifier: MIT
"""`python -m pysg.cli`: the `pysg` command."""
import sys

from pysg.cli import main

sys.exit(main())
