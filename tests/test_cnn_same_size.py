# SPDX-License-Identifier: MIT
"""bench.cnn_same_size: the network's MACs counted by torch's own shapes, and train_anchor's
`build` hook (the anchor itself when not given)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason='pip install "pysg[torch]"')

from bench.cnn_same_size import macs, same_size_net  # noqa: E402
from tests.support.cnn_anchor.data import SplitEvents  # noqa: E402
from tests.support.cnn_anchor.model import AnchorConfig, AnchorNet, train_anchor  # noqa: E402


def test_macs_are_what_the_layers_compute():
    cfg = AnchorConfig()
    net, counted = same_size_net(cfg), []

    def hook(m, inp, out):
        if isinstance(m, torch.nn.Conv2d):
            counted.append(out[0].numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1])
        elif isinstance(m, torch.nn.Linear):
            counted.append(m.in_features * m.out_features)

    for m in net.modules():
        m.register_forward_hook(hook)
    net.eval()(torch.zeros(1, 2 * cfg.n_bins, 32, 32))
    assert len(counted) == 3 and sum(counted) == macs(cfg) == 361_504


def test_train_anchor_builds_the_given_network():
    rng = np.random.default_rng(0)
    n = 8
    counts = np.full(n, 50)
    ev = SplitEvents(t=np.sort(rng.integers(0, 400_000, (n, 50)), axis=1).ravel().astype(np.uint32),
                     cell=rng.integers(0, 2048, n * 50).astype(np.uint16),
                     offsets=np.concatenate(([0], np.cumsum(counts))), durations=np.full(n, 400_000),
                     labels=np.arange(n) % 11)
    cfg = AnchorConfig(epochs=1, batch=4)
    assert isinstance(train_anchor(ev, cfg, log=lambda s: None), AnchorNet)
    net = train_anchor(ev, cfg, log=lambda s: None, build=same_size_net)
    assert isinstance(net, torch.nn.Sequential) and net[0].out_channels == 16
