# SPDX-License-Identifier: MIT
"""The default gesture network of `pysg train` (pysg.recipes.default_network) on the
STM32 port's budget and on the firmware: its state (FORMAT.md section 9's arena
formula, worked out by hand here) fits the port's 32 KiB arena (firmware/Makefile's
SG_APP_ARENA_SIZE), its .sgm fits one 128 KiB flash slot of the STM32F407 port
(firmware/boards/stm32f4: sectors of 0x20000 bytes, less the 256-byte image header),
and in qemu-system-arm (mps2-an386) the firmware's per-step logits equal the integer
reference pysg.intref's, bit for bit, for bundled gestures."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from pysg import intref
from pysg.converters.sgm import export_network
from pysg.datasets.binning import bin_events
from pysg.datasets.gesture import read_labels_csv
from pysg.io import read_events
from pysg.recipes import BUNDLED_SAMPLES, default_network
from pysg.sgm import load_sgm
from pysg.train.trainer import SequenceData, calibrate

ROOT = Path(__file__).resolve().parent.parent
RECORDING = BUNDLED_SAMPLES / "user01_fluorescent.aedat"
N_GESTURES, STEPS = 2, 40  # 1.6 s at the default 40 ms: every delay slot in use


def _gestures(dt_us: int) -> list[np.ndarray]:
    events = read_events(RECORDING).events
    out = []
    for row in read_labels_csv(BUNDLED_SAMPLES / "user01_fluorescent_labels.csv")[:N_GESTURES]:
        ev = events[(events["t"] >= row["t_start"]) & (events["t"] < row["t_end"])].copy()
        ev["t"] -= row["t_start"]
        frames = bin_events(ev, duration_us=int(row["t_end"] - row["t_start"]), dt_us=dt_us,
                            sensor_size=(128, 128), downsample=4, channels=2)
        out.append(frames[:STEPS])
    return out


@pytest.fixture(scope="module")
def default_sgm() -> tuple[bytes, list[np.ndarray]]:
    """The default network, calibrated on two bundled gestures (so its hidden neurons
    spike as a trained one's do), exported to .sgm."""
    net = default_network()
    frames = _gestures(net.config.dt_us)
    calibrate(net, SequenceData(np.stack(frames), np.full(len(frames), STEPS), np.arange(len(frames)),
                                net.config.dt_us), n=len(frames))
    return export_network(net), frames


def test_default_network_fits_the_stm32_port(default_sgm):
    data, _ = default_sgm
    model = load_sgm(data)
    # FORMAT.md section 4, K = 4: stage 0 conv 16 x 8 x 8 hidden, stage 1 96 hidden reading
    # the map through delays of 0, 3, 5, 8 steps (0, 120, 200, 320 ms at 40 ms; conv channel
    # c gets the (c mod 4)-th) kept as a spike ring of 9 slots x 1,024 bits, stage 2 the 11 outputs;
    # stage 0's input gate of 3 events keeps a byte per raw input (2 x 32 x 32)
    k = 4
    assert model.dt_us == 40_000
    assert model.stages[0].min_count == 3
    st = model.stages[1]
    assert st.spike_ring and st.max_delay == 8
    assert st.delays.tolist() == [[0, 3, 5, 8][c % 4] for c in range(16) for _ in range(64)]
    by_hand = 4 * ((k * 1024 + 1024 + 2048 // 4) + (k * 96 + 96 + 9 * 1024 // 32) + k * 11)
    assert model.arena_bytes == by_hand == 25_776
    port_arena = int(re.search(r"SG_APP_ARENA_SIZE=(\d+)u", (ROOT / "firmware" / "Makefile").read_text()).group(1))
    assert port_arena == 32 * 1024 and model.arena_bytes <= port_arena
    assert len(data) <= 0x20000 - 256


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_default_network_on_the_firmware_equals_the_reference(firmware, default_sgm):
    from pysg.device import qemu as q
    from pysg.device.client import Device

    data, gestures = default_sgm
    model = load_sgm(data)
    with q.start(app_image=firmware) as qd, Device(qd.url) as dev:
        dev.upload_model(data)
        for frames in gestures:
            ref = intref.run(model, frames[:, None]).logits[:, 0]
            assert np.abs(ref).max() > 0  # the logits move: spikes reach the output
            np.testing.assert_array_equal(dev.stream_frames(frames), ref)
