# SPDX-License-Identifier: MIT
"""Code the tests, the golden-data generators of runtime_c/tests and the benches share,
one module per kind of helper (nothing here imports a test module; fixtures live in
tests/conftest.py):

* ``cnn_baseline/``: the TFLite baseline's int8 gesture CNN (framing, training,
  quantisation, LiteRT, the trained model's cache);
* ``qnet_models``: random int8 TFLite networks, sparse frame sequences, TFLite Micro, the
  baseline CNN with seeded weights, the event-count input tensor;
* ``qkernel_cases``: random one-operator int8 layers and real wake-word activations;
* ``device_link``: the device protocol in raw frames;
* ``event_server``, ``streams``, ``dv_files``, ``realdata``, ``bundled``: event inputs
  (a TCP stream server, random streams, DV-written AEDAT 4.0, real recordings, the
  bundled recording's gestures);
* ``cli_output``: reading `--json` lines a command printed;
* ``gesture_split``, ``measure``: the benches' cached input split, timing, callgrind
  counts and worker subprocesses.
"""
