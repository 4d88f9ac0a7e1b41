# SPDX-License-Identifier: MIT
"""`Device`: the typed operations of docs/PROTOCOL.md on top of `pysg.device.link`.

    with Device("socket://127.0.0.1:5555") as dev:
        print(dev.hello_info, dev.info())
        dev.upload_model(open("model.sgm", "rb").read(), progress=print)
        rows = list(dev.stream_gestures(events, labels))

Uploads resume where the device stopped after a lost link (the device keeps the
received bytes in RAM; MODEL_BEGIN answers the offset), are verified on the device
(CRC-32 and the runtime's own validation at END) and read back before activation.
Streams send the input counts that `pysg.datasets.binning.bin_events` gives the
integer reference, so the device's logits and predictions equal `pysg.intref`'s.

One module per concern: `pysg.device.session` (the link, HELLO, the noisy-link frame
budget, queries), `pysg.device.upload` (models and firmware), `pysg.device.stream`
(inference); `pysg.device.replies` parses the replies. Their public names are
importable from here.
"""
from __future__ import annotations

from ..scoring import WARMUP  # noqa: F401 - the SpikingGamma rule's warm-up (pysg.scoring), kept as a name here
from .link import LinkError  # noqa: F401 - the errors Device raises, importable here as before
from .ops import Cap  # noqa: F401 - public here too
from .protocol import DeviceError, ProtocolError  # noqa: F401
from .replies import (  # noqa: F401 - the reply records are public here too
    MIN_BUDGET,
    NO_SLOT,
    SLOT_VALID,
    DeviceInfo,
    DeviceStats,
    HelloInfo,
    ModelHeader,
    NoModelError,
    Prediction,
    SlotInfo,
    StreamInfo,
    UnsupportedError,
    UploadResult,
    VerifyError,
    fw_version_text,
)
# The limits are importable from here as before; the code reads them where they are defined.
from .session import RECONNECT_HELLO_TRIES, RECONNECT_TIMEOUT, FrameSizer, Progress, _Stream  # noqa: F401
from .stream import Streams
from .upload import ERASE_TIMEOUT, FW_BOOT_TIMEOUT, OFFSET_JUMPS, UPLOAD_RECONNECTS, Uploads  # noqa: F401

__all__ = ["Device", "HelloInfo", "SlotInfo", "DeviceInfo", "DeviceStats", "StreamInfo", "Prediction",
           "ModelHeader", "UploadResult", "VerifyError", "UnsupportedError", "NoModelError", "WARMUP", "RECONNECT_TIMEOUT", "UPLOAD_RECONNECTS"]


class Device(Uploads, Streams):
    """A pysg device on a port (device path, pty or pyserial URL). Use as a context
    manager; `connect()` opens the port and says HELLO."""
