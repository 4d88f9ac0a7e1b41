# SPDX-License-Identifier: MIT
"""Fixtures more than one test module uses. Shared helper code (not fixtures) lives in
tests/support/ and is imported as ``tests.support.<module>``."""
from __future__ import annotations

import pathlib

import pytest

from tests.support.realdata import fetch_real_recordings


@pytest.fixture(scope="session")
def real_data() -> pathlib.Path:
    """The folder of faery's real recordings (fetched once into a cache); skips the test
    when they cannot be fetched."""
    got = fetch_real_recordings()
    if isinstance(got, str):
        pytest.skip(got)
    return got


@pytest.fixture(scope="session")
def firmware() -> pathlib.Path:
    """The QEMU board's application image (firmware/, built once per session)."""
    from pysg.device import qemu as q

    q.build(("qemu",))
    return q.BUILD_DIR / "app.img"
