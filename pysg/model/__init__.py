# SPDX-License-Identifier: MIT
"""The SpikingGamma model: layer specs, the network and its simulation."""
from .layers import Conv2d, Dense, Flatten, SumPool2d
from .network import Network, NetworkConfig, RunResult, input_counts

__all__ = ["Conv2d", "Dense", "Flatten", "SumPool2d", "Network", "NetworkConfig", "RunResult", "input_counts"]
