# SPDX-License-Identifier: MIT
"""pysg's benchmarks (BENCHMARKS.md). Each runs from the repository root as
``python -m bench.<name>``; shared code comes from pysg and tests.support only."""
