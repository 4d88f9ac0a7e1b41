"""pysg: an embedded edge-inference runtime for SpikingGamma spiking neural networks."""
from __future__ import annotations

__version__ = "0.1.0"
