# SPDX-License-Identifier: MIT
"""The argument parser of `pysg`: every subcommand, its options and the function it runs."""
from __future__ import annotations

import argparse

from ..recipes import DEFAULT_DT_MS, DEFAULT_INPUT_MIN_COUNT
from ..train.gradients import CREDIT_MODES
from ..train.trainer import TrainConfig
from .data import cmd_demo, cmd_eval, cmd_synth, cmd_train
from .device import cmd_device_info, cmd_emulate, cmd_flash, cmd_stream
from .models import cmd_convert, cmd_export, cmd_inspect
from .recordings import cmd_info, cmd_plot, cmd_run


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="pysg", description="SpikingGamma edge inference: train, convert, run.")
    p.add_argument("--quiet", action="store_true", help="no progress bars (also accepted after the subcommand)")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("synth", help="generate a synthetic DVS128-Gesture-layout dataset")
    s.add_argument("out_dir", help="a new folder to write (it must not exist, or be empty)")
    s.add_argument("--train-users", type=int, default=20, help="people in the train split")
    s.add_argument("--test-users", type=int, default=6, help="people in the test split")
    s.add_argument("--lightings-per-user", type=int, default=3, help="recordings per person (one per lighting)")
    s.add_argument("--seconds", type=float, default=2.0, help="duration of each gesture")
    s.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives identical files)")
    s.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    s.add_argument("--difficulty", choices=("easy", "hard"), default="easy",
                   help="easy: the default set; hard: clutter, camera shake, passers-by, hot pixels, noise, "
                        "a wider spread of people (docs/SYNTH.md)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("train", help="train the default gesture network online")
    s.add_argument("data_dir", help="dataset folder (DVS128-Gesture layout, e.g. from `pysg synth`) or a tonic dataset on disk, "
                                           "tonic:NAME:ROOT[+Transform(...)] (docs/DATASETS.md)")
    s.add_argument("-o", "--output", required=True, help="model file to write (.npz)")
    s.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    s.add_argument("--dt-ms", type=float, default=None,
                   help=f"simulation step, ms (default: the recipe's, {DEFAULT_DT_MS:g})")
    s.add_argument("--seed", type=int, default=0, help="random seed of the initial weights and the sample order")
    s.add_argument("--resume", action="store_true", help="continue from OUTPUT.ckpt")
    s.add_argument("--credit", choices=CREDIT_MODES, default=None,
                   help=f"how the online rule credits the layers below (default: {TrainConfig.credit}: the "
                        f"convolution through forward traces of the dense layer's delays and buckets; all: the "
                        f"present step only, about 3x faster, 3.5 points less on the hard set; docs/MODEL.md)")
    s.add_argument("--no-mirror", action="store_true",
                   help="train without mirrored gestures (by default half the samples are flipped left to right, "
                        "a right arm gesture becoming the left arm's and a clockwise circle anticlockwise; for data "
                        "whose classes are not DVS128 Gesture's)")
    s.add_argument("--min-count", type=int, default=None, metavar="N",
                   help=f"take an input's events of a step only when N or more arrive (default: the recipe's, "
                        f"{DEFAULT_INPUT_MIN_COUNT} at {DEFAULT_DT_MS:g} ms steps, scaled with the step; 0 keeps "
                        f"every event; docs/TRAINING.md)")
    s.add_argument("--history", help="write the training curves (JSON) here (default: not written)")
    s.add_argument("--backend", choices=("numpy", "torch"), default="numpy",
                   help="numpy: the reference trainer; torch: the same rule on PyTorch, pip install \"pysg[torch]\" "
                        "(default: numpy; docs/TRAINING.md)")
    s.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="torch backend: where to train (default: cpu)")
    s.add_argument("--ddp", action="store_true",
                   help="torch backend: one rank of a DistributedDataParallel job (launch with torchrun "
                        "--nproc_per_node N -m pysg.train ...)")
    s.add_argument("--threads", type=int, default=None,
                   help="torch backend: CPU threads per process (default: torch's, one per core)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="evaluate a model on a dataset split")
    s.add_argument("model", help="float model (.npz) or .sgm model")
    s.add_argument("data_dir", help="dataset folder (DVS128-Gesture layout) or tonic:NAME:ROOT[+Transform(...)] "
                                    "(docs/DATASETS.md)")
    s.add_argument("--split", default="test", choices=("train", "test"), help="which split to evaluate")
    s.add_argument("--dt-ms", type=float, default=None,
                   help="retarget the model to this step first (default: the model's own step)")
    s.add_argument("--plot", help="write the confusion matrix as PNG here (default: no plot)")
    s.add_argument("--engine", choices=("float", "ref", "c"), default=None,
                   help="float: the float model (.npz); ref: the Python int8 integer reference; c: the C "
                        "runtime (both take an .sgm, or an .npz quantised first). Default: c for an .sgm, "
                        "float otherwise")
    s.add_argument("--at-ms", type=_ms_list, default=None, metavar="T,T,...",
                   help="also the accuracy of the decision T ms after each gesture's onset, e.g. "
                        "100,200,300,500,1000 (default: none)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("export", help="quantise a float model (.npz) into an int8 .sgm model file")
    s.add_argument("model", help="float model (.npz) from `pysg train`")
    s.add_argument("-o", "--output", default=None, help=".sgm file to write (default: none; give -o, --nir or both)")
    s.add_argument("--nir", default=None, help="also (or only) write the float network as a NIR graph (HDF5, "
                                               "nir.read loads it; mapping in docs/NIR.md, needs pysg[nir]; "
                                               "default: none)")
    s.add_argument("--dt-ms", type=float, default=None,
                   help="retarget the model to this step first (default: the model's own step)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("convert", help="convert an int8 TFLite network (.tflite) into an .sgm file run "
                                       "event-driven (delta execution, bit-exact with TFLite)")
    s.add_argument("model", help="int8 .tflite: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, AVERAGE_POOL_2D, "
                                 "RESHAPE, fused ReLU/ReLU6; QUANTIZE / DEQUANTIZE at a float model's edges")
    s.add_argument("-o", "--output", required=True, help=".sgm file to write")
    s.add_argument("--dt-ms", type=float, default=10.0, help="one step (one input frame), ms (default 10)")
    s.add_argument("--steps", type=int, default=20,
                   help="event input: the frame counts the events of the last STEPS steps (default 20)")
    s.add_argument("--input", choices=("events", "tensor"), default=None,
                   help="events: the input tensor is built from event counts on the device; tensor: the host "
                        "sets the whole int8 tensor each step (default: events if the input can be an event-count "
                        "frame, else tensor, said on stderr)")
    s.add_argument("--slices", type=int, default=None,
                   help="time slices of the window (default: input channels / polarity channels)")
    s.add_argument("--polarities", type=int, choices=(1, 2), default=None,
                   help="polarity channels (default 2 if the input channels are even)")
    s.add_argument("--count-map", choices=("log2", "count"), default="log2",
                   help="the real value of a count n on the input tensor's scale: log2(1 + n) or n")
    s.add_argument("--sensor", default=None, help="sensor WIDTHxHEIGHT, a multiple of the input (default: the input)")
    s.add_argument("--labels", default=None, help="comma-separated class names (default 0..N-1)")
    s.add_argument("--json", action="store_true")
    # MODEL.nir: a NIR spiking network -> .sgm version 3 (docs/NIR.md); --dt-ms, --sensor, --labels apply too
    s.add_argument("--nir-from", choices=("auto", "snntorch", "sinabs", "nir"), default="auto",
                   help=".nir: the framework whose discrete-time update to reproduce (default auto: detected "
                        "from how the graph writes tau and r)")
    s.add_argument("--nir-dt", type=float, default=None,
                   help=".nir: the graph's time per step (default: the framework's: snnTorch 1e-4, sinabs and NIR 1)")
    s.add_argument("--logits", choices=("spikes", "membrane"), default="spikes",
                   help=".nir: a spiking output layer's logits: its spikes (scores = spike counts) or its membrane "
                        "(default spikes)")
    s.add_argument("--calibrate", default=None,
                   help=".nir: a dataset (`pysg synth` directory) whose count frames size the fixed point state "
                        "(default: none, scales from the graph alone)")
    s.set_defaults(func=cmd_convert)

    s = sub.add_parser("inspect", help="validate an .sgm model file and describe it")
    s.add_argument("model", help=".sgm model file")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("run", help="run an .sgm model on a recording, or live on an event source")
    s.add_argument("model", help=".sgm model (or a float .npz, quantised first)")
    s.add_argument("events", nargs="?", help="event file, any supported format: one sample, a sample per labelled "
                                             "gesture (a labels CSV), or a prediction per --window-ms")
    s.add_argument("--source", help="live input: tcp://HOST:PORT (DV network stream), camera[:SERIAL], "
                                    "or a file replayed at --speed; prints a prediction per --window-ms (default: "
                                    "none, give EVENTS)")
    s.add_argument("--labels", default=None,
                   help="DVS128-Gesture labels CSV: one sample per labelled gesture (default when "
                        "<stem>_labels.csv is beside the recording and --window-ms is not given)")
    s.add_argument("--one-sample", action="store_true",
                   help="the whole recording is one sample, even with a labels CSV beside it")
    s.add_argument("--window-ms", type=float, default=None,
                   help="a prediction per window of this length (--source: default 500)")
    s.add_argument("--speed", type=float, default=None,
                   help="file replay speed (1 = recorded speed; default: as fast as possible)")
    s.add_argument("--engine", choices=("c", "ref"), default=None,
                   help="c (default): the C runtime; ref: the Python integer reference of the model's kind "
                        "(bit-exact twins)")
    s.add_argument("--dump-logits", help="save the per-step int32 logits (steps x classes) as .npy (default: not "
                                         "saved)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("info", help="describe an event file (any supported format)")
    s.add_argument("events", help="event file (aedat2/3.1/4, EVT 2.0/3.0, .npy)")
    s.add_argument("--model", default=None,
                   help="count the events the sensor mapping onto this model's sensor drops (default: count "
                        "those outside the recording's own declared sensor)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("demo", help="recognise gestures in the bundled sample recordings")
    s.add_argument("--engine", choices=("c", "ref", "float"), default="c",
                   help="c (default): the bundled model exported to .sgm in memory and run by the C runtime; "
                        "ref: the same on the Python integer reference; float: the float model")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("plot", help="PNG plots: training curves, confusion, event frames, spike raster")
    s.add_argument("what", choices=("curves", "confusion", "events", "raster"), help="which plot")
    s.add_argument("input", help="history JSON (curves), eval JSON (confusion), a dataset folder or one "
                                 "recording (events, raster)")
    s.add_argument("-o", "--output", required=True, help="PNG file to write")
    s.add_argument("--model", help="model for the spike raster (needed by raster; default: none)")
    s.add_argument("--sample", type=int, default=0, help="sample index in the folder's test split")
    s.set_defaults(func=cmd_plot)

    s = sub.add_parser("flash", help="upload a model (or, with --firmware, a firmware image) to a device")
    s.add_argument("model", nargs="?", help=".sgm model, or a float .npz model (exported as `pysg export` does)")
    s.add_argument("--port", required=True, help="device path, pty, or pyserial URL (socket://HOST:PORT)")
    s.add_argument("--firmware", help="firmware image (.img, from `python -m pysg.device.image`) instead of a model "
                                      "(default: none, MODEL is flashed)")
    s.add_argument("--dt-ms", type=float, default=None,
                   help="retarget a float model to this step first (default: the model's own step)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_flash)

    s = sub.add_parser("stream", help="stream a recording to a device: a prediction per gesture or per window")
    s.add_argument("events", help="event file, any supported format")
    s.add_argument("--port", required=True, help="device path, pty, or pyserial URL (socket://HOST:PORT)")
    s.add_argument("--labels", help="DVS128-Gesture labels CSV: one sample per labelled gesture (default when "
                                    "<stem>_labels.csv is beside the recording and --window-ms is not given)")
    s.add_argument("--window-ms", type=float, default=None, help="a prediction per window (default 500)")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.set_defaults(func=cmd_stream)

    s = sub.add_parser("device", help="talk to a device")
    dsub = s.add_subparsers(dest="device_command", required=True, metavar="SUBCOMMAND")
    d = dsub.add_parser("info", help="identity, capabilities, model slots and the active model")
    d.add_argument("--port", required=True, help="device path, pty, or pyserial URL (socket://HOST:PORT)")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_device_info)

    # --- DEV block: esptool-style device commands, --baud, stream --speed, `pysg bench` ---
    from .bench import cmd_bench
    from .device import (cmd_device_activate, cmd_device_list, cmd_device_read_model, cmd_device_reset,
                         cmd_device_slots, cmd_device_stats)

    port_help = "device path, pty, or pyserial URL (socket://HOST:PORT)"
    d = dsub.add_parser("list", help="the host's serial ports: path, description, VID:PID")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_device_list)
    for name, fn, text in (("reset", cmd_device_reset, "reset the device and wait until it answers again"),
                           ("stats", cmd_device_stats, "counters: steps, events, synaptic ops, spikes per stage, "
                                                       "frames ok/dropped, busy time"),
                           ("slots", cmd_device_slots, "both model slots (A, B): state, generation, size, CRC-32, "
                                                       "which is active")):
        d = dsub.add_parser(name, help=text)
        d.add_argument("--port", required=True, help=port_help)
        d.add_argument("--json", action="store_true")
        d.set_defaults(func=fn)
    d = dsub.add_parser("activate", help="roll back (or forward): make slot A or B (holding a valid model) the "
                                         "active one; both models stay")
    d.add_argument("slot", choices=("A", "B", "a", "b"), metavar="A|B",
                   help="the slot whose model becomes active (the other one keeps its model)")
    d.add_argument("--port", required=True, help=port_help)
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_device_activate)
    d = dsub.add_parser("read-model", help="save a slot's model (default: the active one), checked against the "
                                           "slot's CRC-32")
    d.add_argument("-o", "--output", required=True, help=".sgm file to write (atomically)")
    d.add_argument("--slot", choices=("A", "B", "a", "b"), metavar="A|B", default=None,
                   help="slot to read (default: the active one)")
    d.add_argument("--port", required=True, help=port_help)
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_device_read_model)
    for cmd in [sub.choices["flash"], sub.choices["stream"]] + [c for n, c in dsub.choices.items() if n != "list"]:
        cmd.add_argument("--baud", type=int, default=None, metavar="RATE",
                         help="serial rate: connect at 115200, then switch the device and the host to RATE "
                              "(SET_BAUD: devices with the BAUD capability; default: stay at 115200)")
    sub.choices["stream"].add_argument("--speed", type=float, default=None,
                                       help="pace the recording: 1 = real time, 2 = twice as fast (default: as "
                                            "fast as the link allows)")
    s = sub.add_parser("bench", help="benchmark a model on a recording, like TFLite's benchmark_model: per-step "
                                     "latency percentiles, throughput, arena, model size, peak memory")
    s.add_argument("model", help=".sgm model, or a float .npz model (quantised first)")
    s.add_argument("events", nargs="?", default=None,
                   help="event file, any supported format (default: the bundled recording)")
    s.add_argument("--engine", choices=("c", "ref", "float"), default="c",
                   help="c (default): the C runtime; ref: the Python integer reference; float: the float model "
                        "(an .npz only)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_bench)
    # --- end DEV block ---

    s = sub.add_parser("emulate", help="run an emulated device (POSIX, or the firmware in QEMU) and print its URL")
    s.add_argument("--qemu", action="store_true", help="the real firmware in qemu-system-arm (mps2-an386)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--tcp", type=_tcp_port, default=None, metavar="PORT",
                   help="serve on TCP PORT (0: any free port; default)")
    g.add_argument("--pty", action="store_true", help="a pseudo-terminal (POSIX device only)")
    s.add_argument("--flash", help="flash image file (kept across runs; default: a temporary file)")
    s.set_defaults(func=cmd_emulate)
    # sensor mapping (SENS): --crop / --downsample on run, eval and stream
    from ..preprocess import parse_crop

    def _crop(text: str):
        try:
            return parse_crop(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    for name in ("run", "eval", "stream", "bench", "info"):
        s = sub.choices[name]
        s.add_argument("--crop", type=_crop, default=None, metavar="X,Y,W,H",
                       help="window of the recording mapped onto the model's sensor (default: the largest centred "
                            "window of the sensor's aspect ratio; docs/ARCHITECTURE.md)")
        s.add_argument("--downsample", type=int, default=None, metavar="N",
                       help="integer factor from the window to the model's sensor (default: the smallest that fits)")
    _positive_numbers(p)
    _show_defaults(p)
    return p


POSITIVE = {"window_ms": float, "speed": float, "dt_ms": float, "seconds": float, "steps": int, "workers": int}


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if not value > 0:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"{text}: give a value above 0")
        return value

    parse.__name__ = kind.__name__
    return parse


def _ms_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give times in ms separated by commas, e.g. 100,300") from None
    if not all(v > 0 for v in values):  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text}: every time must be above 0 ms")
    return values


def _tcp_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text}: give a TCP port number, 0..65535 (0: any free port)")
    return port


def _positive_numbers(parser: argparse.ArgumentParser) -> None:
    """Lengths, rates, steps and counts must be above 0: refused while parsing (exit 2, one
    line), before any file is read."""
    for action in parser._actions:
        if action.dest in POSITIVE and action.type in (int, float):
            action.type = _positive(POSITIVE[action.dest])
        if isinstance(action, argparse._SubParsersAction):
            for sp in action.choices.values():
                _positive_numbers(sp)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pysg")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors in one line on stderr, exit status 2, as every other input error:
    `pysg run: error: argument --window-ms: invalid float value: 'x' (see pysg run --help)`.
    Subparsers are made of this class too (argparse's add_subparsers default)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _DefaultsHelp(argparse.HelpFormatter):
    """argparse.ArgumentDefaultsHelpFormatter without the noise: an option's default is
    appended unless it is None/False or its help already states it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (not action.option_strings or action.default is None or action.default is False or action.default is argparse.SUPPRESS
                or "default" in text):
            return text
        return text + " (default: %(default)s)"


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every parser's help shows each option's default; every --json says what it prints."""
    parser.formatter_class = _DefaultsHelp
    for action in parser._actions:
        if action.dest == "json" and action.help is None:
            action.help = "print JSON instead of text (keys: docs/CLI.md)"
        if isinstance(action, argparse._SubParsersAction):
            for sp in action.choices.values():
                _show_defaults(sp)
