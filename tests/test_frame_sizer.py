# SPDX-License-Identifier: MIT
"""One frame-size rule for every request of a session (issue 14): uploads, their read-back,
`read_model` and streaming all size their frames from the session's FrameSizer (the loss
estimate of pysg.device.session), so what one of them learns about the link the others
use. Truth: the requests and replies on the wire (the link's own command calls) against
the POSIX emulated device, and the closed form 1/p for the sizer's steady state."""
from __future__ import annotations

import numpy as np
import pytest

from pysg.converters.sgm import export_network
from pysg.device.client import Device
from pysg.device.link import LinkError
from pysg.device.ops import Op
from pysg.device.posix import start_posix_device
from pysg.device.protocol import STEPS_REPLY_FIXED, encode_steps, next_steps
from pysg.device.session import FRAME_OVERHEAD, FrameSizer
from pysg.model.network import Network
from pysg.recipes import BUNDLED_MODEL
from tests.support.bundled import gesture_frames


@pytest.mark.parametrize("p", [1e-3, 3e-3, 1e-2])
def test_the_size_settles_near_one_over_the_loss_per_byte(p):
    """A frame of n bytes (both ways, framed) gets through with (1-p)^n: the size settles
    within a factor of 3 of 1/p - overhead (the throughput optimum is near 1/p)."""
    rng = np.random.default_rng(1)
    s = FrameSizer(64, 4096)
    sizes = []
    for _ in range(4000):
        n = s.size + 8 + 2 * FRAME_OVERHEAD
        s.record(s.size, 8, bool(rng.random() < (1 - p) ** n))
        sizes.append(s.size)
    settled = np.median(sizes[1000:])
    assert 1 / p / 3 <= settled + 2 * FRAME_OVERHEAD <= 3 / p, settled


@pytest.mark.parametrize("p", [1e-4, 1e-3])
def test_a_request_resent_as_it_is_gets_a_frame_that_survives_9_times_in_10(p):
    """FrameSizer.safe (streams, reads): (1-p)^n >= 0.9 within a factor of 2, never above size."""
    rng = np.random.default_rng(2)
    s = FrameSizer(64, 4096)
    for _ in range(3000):
        n = s.size + 8 + 2 * FRAME_OVERHEAD
        s.record(s.size, 8, bool(rng.random() < (1 - p) ** n))
    survive = (1 - p) ** (s.safe + 8 + 2 * FRAME_OVERHEAD)
    assert s.safe <= s.size and (survive >= 0.8 or s.safe == s.low), (s.safe, survive)
    assert s.safe == s.size or survive <= 0.97, (s.safe, survive)


def test_clean_tries_keep_the_largest_frame_and_a_lost_one_halves_it():
    s = FrameSizer(64, 4092)
    for _ in range(50):
        s.record(4092, 8, True)
    assert s.size == 4092
    s.record(4092, 8, False)
    assert s.size == 2046
    s.record(7, 2000, False)              # a lost reply halves it too (reads and streams)
    assert s.size == 1023
    s.record(20, 40, False)               # a short frame lost: counted in the estimate, no halving
    assert s.size == 1023
    s.bound(64, 512)                      # a HELLO with a smaller max_payload
    assert s.size == 512


class Wire:
    """The link's command calls: (op, request payload bytes, reply payload bytes, the
    session's frame size before the call); `lose` makes the next call of an op fail as a
    lost frame would."""

    def __init__(self, dev):
        self.dev, self.calls, self.lose = dev, [], set()
        self._command = dev.link.command
        dev.link.command = self.command

    def command(self, op, payload=b"", **kw):
        size = self.dev.sizer.size
        if op in self.lose:
            self.lose.discard(op)
            raise LinkError(f"{Op(op).name}: no reply (test)")
        r = self._command(op, payload, **kw)
        self.calls.append((op, len(payload), len(r), size))
        return r

    def of(self, op):
        return [c for c in self.calls if c[0] == op]


@pytest.fixture(scope="module")
def sgm():
    return export_network(Network.load(BUNDLED_MODEL))


def test_upload_read_back_read_model_and_stream_follow_one_size(tmp_path, sgm):
    from pysg.sgm import load_sgm

    frames = gesture_frames(load_sgm(sgm), 1)[0][0]
    with start_posix_device(tmp_path / "flash.bin") as d, Device(d.url) as dev:
        top = dev.hello_info.max_payload
        wire = Wire(dev)
        dev.sizer.size = 300                        # as if the link had taught it (clean tries grow it back)
        r = dev.upload_model(sgm)
        data = wire.of(Op.MODEL_DATA)
        assert data[0][3] < top and sum(req - 4 for _, req, _, _ in data) == len(sgm)
        assert all(req == size for _, req, _, size in data[:-1])      # each DATA frame: offset + part = size
        reads = wire.of(Op.MODEL_READ)                                 # the read-back: status + data = size
        assert reads and all(reply + 1 == size for _, _, reply, size in reads[:-1])
        dev.sizer.size = 200
        wire.calls.clear()
        assert dev.read_model(r.slot, size=5000) == sgm[:5000]
        reads = wire.of(Op.MODEL_READ)
        assert reads[0][2] == 199 and all(reply + 1 == size for _, _, reply, size in reads[:-1])
        dev.sizer.size = 250
        wire.calls.clear()
        dev.stream_frames(frames, logits=True)
        steps = wire.of(Op.STREAM_STEPS)
        assert len(steps) > 1 and all(max(req, reply) <= size for _, req, reply, size in steps)
        sizes = [len(b) for b in encode_steps(frames)]
        a = 0
        for _, req, reply, size in steps:      # each request: as many steps as fit the size then (44 B of logits each)
            b = next_steps(sizes, a, top, 44, size)
            assert req == sum(sizes[a:b]) and reply == STEPS_REPLY_FIXED - 1 + 44 * (b - a)   # status byte apart
            a = b
        assert a == len(frames)
        # a lost read reply halves the size for every later request
        size = dev.sizer.size
        wire.lose.add(Op.MODEL_READ)
        with pytest.raises(LinkError):
            dev.read_model(r.slot, size=5000)
        budget = dev.frame_budget
        assert dev.sizer.size == size // 2 and budget <= size // 2
        wire.calls.clear()
        assert dev.read_model(r.slot, size=5000) == sgm[:5000]
        assert wire.of(Op.MODEL_READ)[0][2] == budget - 1
