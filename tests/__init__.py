# SPDX-License-Identifier: MIT
"""pysg's test suite: a package so that tests and benches import shared code as
``tests.support`` (run from the repository root; pytest.ini puts it on the path)."""
