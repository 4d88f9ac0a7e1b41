# SPDX-License-Identifier: MIT
"""Device cost of the C runtime on a Cortex-M4F: deterministic instruction counts per
second of gesture input under QEMU (mps2-an386) with the TCG `insn` plugin, the RAM and
flash the driver needs, and the real-time factor they imply at 168 MHz.

    OMP_NUM_THREADS=1 python -m bench.device_cost [--dt-ms 10 1] [--kind frames events] [--opt O2 Os]
        [--gestures N] [--data DIR] [--model file.sgm] [--plugin libinsn.so] [--repeat 2] [--no-icount] [--profile] [--json]
        [--kind ... cmsis --cmsis-nn DIR --cmsis-core DIR]

What it does:
  1. builds QEMU's tests/plugin/insn.c from Debian's qemu source package (the version
     installed; cached under ~/.cache/pysg-bench), unless --plugin names a built one;
  2. builds bench/device_cost/ (driver + runtime sources, -O2 and -Os, hard-float M4F);
  3. exports the bundled gesture model (pysg/data/gesture_model.npz) at each dt, or takes
     --model; bins the gestures of the bundled recording (pysg/data/samples, its labels
     CSV, `test` split: 11 gestures of 2 s; --data: another folder's) into per-step frames (--kind frames: sg_step),
     and keeps their events (--kind events: 64-event packets through sg_feed);
  4. runs QEMU twice per case: the job with the runtime calls and a baseline job that does
     everything else (load, init, frame expansion, hashing, result output) with zero
     steps; the difference is the inference alone. Every case runs --repeat times and
     the counts must be identical;
  5. checks the device's per-step logits (hash), scores, predictions, synaptic ops and
     spikes equal pysg.intref's, so the counts are of correct work;
  6. cross-checks with `-icount shift=0`: QEMU's virtual clock then advances 1 ns per
     instruction and SysTick (core clock, 25 MHz on this board) ticks every 40 of them;
  7. with --profile, attributes the run's instructions to functions (contrib/plugins/
     hotblocks.c from the same source, its report limit lifted).
--kind cmsis (a version 2 --model): the dense kind's job run by CMSIS-NN's int8 kernels
instead (bench/device_cost/dc_cmsis.c; what TFLite Micro runs on a Cortex-M4), checked
like dense. CMSIS-NN and CMSIS Core are compiled from --cmsis-nn (a checkout of
ARM-software/CMSIS-NN) and --cmsis-core (a checkout of ARM-software/CMSIS_6), either
may be a bare git mirror (checked out once into the cache); never kept in this
repository. bench.device_anchor puts all kinds of both model families in one table.

Raw counts depend slightly on the work directory (the result path's length is part of the
job); run - baseline does not.

Real-time factor: 168 MHz / (instructions per second of input), assuming one instruction
per cycle. That is an assumption: a Cortex-M4 running from flash with wait states averages
about 1.2-1.5 cycles per instruction (loads, taken branches, flash stalls), so the cycle
figure is shown for CPI 1.0 and 1.5.

Longer than ~500 lines on purpose: one script read top to bottom (plugin, driver, job,
truth, cases, main), whose sections serve only this benchmark; bench/device_cost/ beside it
holds the C driver.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pysg.converters.sgm import export_network
from pysg import intref
from pysg.datasets.gesture import GestureDataset
from pysg.model.network import Network
from pysg.recipes import BUNDLED_MODEL, BUNDLED_SAMPLES
from pysg.sgm import SgmModel, SgmQModel, load_sgm
from pysg.sgm.snn import SgmSnnModel
from pysg.train.trainer import bin_samples

ROOT = Path(__file__).resolve().parents[1]
DRIVER_DIR = ROOT / "bench" / "device_cost"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pysg-bench"
QEMU = "qemu-system-arm"
QEMU_BASE = [QEMU, "-M", "mps2-an386", "-m", "16M", "-nographic", "-monitor", "none", "-serial", "none",
             "-semihosting-config", "enable=on,target=native"]
JOB_ADDR = 0x21000000
JOB_LIMIT = 16 << 20             # the board's RAM at 0x21000000
JOB_MAGIC, RESULT_MAGIC, JOB_VERSION = 0x43444753, 0x52444753, 1
FLAG_RUN, FLAG_SYSTICK = 1, 2
# dc_job.h DC_KIND_*: sg_step on frames, sg_feed on events, and for an imported network
# (version 2) its layers run densely per frame by the TFLite-exact kernels (dc_dense.c)
KINDS = {"frames": 0, "events": 1, "dense": 2}
# --kind cmsis: the dense job run by CMSIS-NN's kernels (dc_cmsis.c, the dc_cmsis_*.elf builds)
KINDS["cmsis"] = KINDS["dense"]
DENSE_KINDS = ("dense", "cmsis")
EVENT_REC = np.dtype([("t", "<u4"), ("x", "u1"), ("y", "u1"), ("p", "u1"), ("pad", "u1")])  # dc_event_rec
HEADER = struct.Struct("<10I")   # dc_job_header
GESTURE = struct.Struct("<IiII5Q")  # dc_gesture_result
TRAILER = struct.Struct("<Ii8IQ")   # dc_trailer
FNV_BASIS, FNV_PRIME = 0x811C9DC5, 0x01000193
SYSCLK_HZ = 25_000_000           # mps2-an386 SYSCLK (QEMU hw/arm/mps2.c): SysTick's core clock
TARGET_HZ = 168_000_000          # an STM32F4-class Cortex-M4 at full speed
GOAL_INSN_PER_S = 20e6
GOAL_ARENA = 64 * 1024
QEMU_TIMEOUT_S = 900


class BenchError(RuntimeError):
    """A step of the benchmark failed (build, QEMU run, or a mismatch with pysg.intref)."""


# --------------------------------------------------------------------------- plugin
def installed_qemu_source_version() -> str:
    """Debian source version of the installed qemu-system-arm (e.g. 1:7.2+dfsg-7+deb12u18)."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${source:Version}", "qemu-system-arm"],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0 or not out.stdout.strip():
        raise BenchError(f"dpkg-query cannot tell the qemu-system-arm version: {out.stderr.strip()}")
    return out.stdout.strip()


def build_plugin(name: str = "insn", cache: Path = CACHE) -> tuple[Path, dict]:
    """A TCG plugin built from the Debian source of the installed QEMU, cached by version:
    "insn" (tests/plugin/insn.c, the instruction count) or "hotblocks"
    (contrib/plugins/hotblocks.c with its 20-block report limit lifted, for --profile)."""
    sources = {"insn": "tests/plugin/insn.c", "hotblocks": "contrib/plugins/hotblocks.c"}
    version = installed_qemu_source_version()
    safe = re.sub(r"[^A-Za-z0-9.+-]", "_", version)
    out_dir = cache / f"qemu-plugin-{safe}"
    lib = out_dir / f"lib{name}.so"
    binary = subprocess.run([QEMU, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    # the binary says e.g. "(Debian 1:7.2+dfsg-7+deb12u18+b3)": a binNMU (+bN) of that source version
    built_from = re.search(r"\(Debian ([^)]+?)(?:\+b\d+)?\)", binary)
    info = {"qemu_binary": binary, "source_package": f"qemu {version}", "plugin": str(lib),
            "binary_matches_source": bool(built_from and built_from[1] == version)}
    if not info["binary_matches_source"]:
        print(f"warning: {binary!r} does not name source version {version}; the plugin API may differ",
              file=sys.stderr)
    if lib.exists():
        return lib, info
    src_dir = cache / "qemu-src"
    src_dir.mkdir(parents=True, exist_ok=True)
    upstream = version.split(":", 1)[-1].rsplit("-", 1)[0]  # 7.2+dfsg
    orig = src_dir / f"qemu_{upstream}.orig.tar.xz"
    if not orig.exists():
        got = subprocess.run(["apt-get", "source", "--download-only", f"qemu={version}"], cwd=src_dir,
                             capture_output=True, text=True, check=False)
        if got.returncode != 0 or not orig.exists():
            raise BenchError(
                f"apt-get source qemu={version} failed ({got.stderr.strip()[-300:]}): add a deb-src line for this "
                "Debian release (e.g. /etc/apt/sources.list.d/debian-src.sources with 'Types: deb-src'), run "
                "apt-get update once, or pass --plugin with a built libinsn.so")
    have_glib = shutil.which("pkg-config") and subprocess.run(["pkg-config", "--exists", "glib-2.0"],
                                                                check=False).returncode == 0
    if not have_glib:
        raise BenchError("glib-2.0 development files not found: apt-get install -y libglib2.0-dev pkg-config")
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = (sources[name], "include/qemu/qemu-plugin.h")
    with tarfile.open(orig) as tar:
        members = [m for m in tar.getmembers() if m.name.split("/", 1)[-1] in wanted]
        if len(members) != len(wanted):
            raise BenchError(f"{orig} lacks {wanted}")
        for m in members:
            m.name = Path(m.name).name
            tar.extract(m, out_dir, filter="data")
    src = out_dir / Path(sources[name]).name
    if name == "hotblocks":  # report every block, not the top 20 (and not all but the last)
        text = src.read_text()
        patched = text.replace("static guint64 limit = 20;", "static guint64 limit = UINT64_MAX;").replace(
            "i < limit && it->next;", "i < limit && it;")
        if patched.count("UINT64_MAX") != 1 or "i < limit && it;" not in patched:
            raise BenchError(f"{src}: unexpected source, cannot lift the report limit")
        src.write_text(patched)
    glib = subprocess.run(["pkg-config", "--cflags", "--libs", "glib-2.0"], capture_output=True, text=True,
                          check=True).stdout.split()
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", f"-I{out_dir}", str(src), "-o", str(lib), *glib], check=True)
    return lib, info


# --------------------------------------------------------------------------- driver
def build_driver(build_dir: Path, arena_bytes: int) -> dict[str, Path]:
    """make -C bench/device_cost: one ELF per optimisation level, arena sized to the model."""
    arena = (arena_bytes + 7) // 8 * 8
    subprocess.run(["make", "-s", "-C", str(DRIVER_DIR), f"B={build_dir}", f"ARENA={arena}"], check=True)
    return {opt: build_dir / f"dc_{opt}.elf" for opt in ("O2", "Os")}


def cmsis_checkout(path: Path, repo: str, marker: str, cache: Path = CACHE) -> Path:
    """The folder of a checkout of ARM-software/<repo> that holds ``marker`` (the checkout
    itself or a folder under it). A bare git mirror is checked out once (git archive of its
    HEAD) under the cache, keyed by commit: its code is read at bench time, never kept in
    this repository."""
    path = path.expanduser()
    if (path / "HEAD").is_file() and (path / "objects").is_dir():  # a bare mirror
        head = subprocess.run(["git", f"--git-dir={path}", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=False)
        if head.returncode != 0:
            raise BenchError(f"{path}: git cannot read this mirror of {repo}: {head.stderr.strip()}")
        out = cache / f"{repo.replace('/', '+')}-{head.stdout.strip()[:12]}"
        if not out.exists():
            tmp = Path(tempfile.mkdtemp(prefix=out.name, dir=cache))
            arc = subprocess.run(["git", f"--git-dir={path}", "archive", "HEAD"], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(tmp)], input=arc.stdout, check=True)
            tmp.rename(out)
        path = out
    for cand in (path, path / "CMSIS" / "Core" / "Include"):
        if (cand / marker).is_file():
            return cand
    raise BenchError(f"{path}: not a checkout of {repo} (no {marker}); pass its folder or its bare git mirror")


def build_cmsis_driver(build_dir: Path, arena_bytes: int, cmsis_nn: Path, cmsis_core: Path) -> dict[str, Path]:
    """make -C bench/device_cost cmsis: dc_cmsis.c and CMSIS-NN (from the checkouts given)
    in place of dc_dense.c, one ELF per optimisation level."""
    nn = cmsis_checkout(cmsis_nn, "ARM-software/CMSIS-NN", "Include/arm_nnfunctions.h")
    core = cmsis_checkout(cmsis_core, "ARM-software/CMSIS_6", "cmsis_compiler.h")
    arena = (arena_bytes + 7) // 8 * 8
    subprocess.run(["make", "-s", "-j2", "-C", str(DRIVER_DIR), "cmsis", f"B={build_dir}", f"ARENA={arena}",
                    f"CMSIS_NN={nn}", f"CMSIS_CORE={core}"], check=True)
    return {opt: build_dir / f"dc_cmsis_{opt}.elf" for opt in ("O2", "Os")}


def cmsis_code(sizes: dict) -> int:
    """Code and read-only data of the CMSIS-NN objects and dc_cmsis.o in an ELF (elf_sizes)."""
    return sum(v for k, v in sizes["by_object"].items() if k.startswith("arm_") or k == "dc_cmsis.o")


def cmsis_commit(path: Path) -> str:
    """The commit of a CMSIS checkout or mirror, for the report ('' if not a git folder)."""
    path = path.expanduser()
    args = [f"--git-dir={path}"] if (path / "HEAD").is_file() else ["-C", str(path)]
    out = subprocess.run(["git", *args, "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return out.stdout.strip() if out.returncode == 0 else ""


def elf_sizes(elf: Path) -> dict:
    """text/data/bss (arm-none-eabi-size, Berkeley) plus the stack reserve and the code of
    the runtime objects alone (from the link map)."""
    out = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    sec = {m[1]: int(m[2]) for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+", out, re.M)}
    berkeley = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True,
                              check=True).stdout.splitlines()[1].split()
    text, data, bss = (int(v) for v in berkeley[:3])
    by_object: dict[str, int] = {}
    link = elf.with_suffix(".map").read_text().split("Linker script and memory map", 1)[-1]
    # input sections: " .text.name" then address, size, object (on the same or the next line)
    for hit in re.finditer(r"^ \.(?:text|rodata)\S*\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)$", link, re.M):
        name = Path(hit[3]).name
        by_object[name] = by_object.get(name, 0) + int(hit[2], 16)
    runtime = sum(v for k, v in by_object.items() if k.startswith("sg_"))
    return {"text": text, "data": data, "bss_incl_stack": bss, "stack_reserve": sec.get(".stack", 0),
            "bss": bss - sec.get(".stack", 0), "runtime_code": runtime, "by_object": by_object}


# --------------------------------------------------------------------------- job
@dataclass
class Gesture:
    label: int
    frames: np.ndarray  # (T, n_inputs) uint16
    events: np.ndarray  # x, y, t (µs from the gesture's start, < its duration), p
    seconds: float


def load_gestures(model: SgmModel | SgmQModel, n: int | None, root: Path = BUNDLED_SAMPLES) -> list[Gesture]:
    """The labelled gestures of `root`'s `test` split (default: the bundled recording's),
    binned at the model's dt exactly as the trainer and pysg.intref bin them (an imported
    network: per polarity channel)."""
    ds = GestureDataset(root, "test")
    samples = [ds[i] for i in range(len(ds) if n is None else min(n, len(ds)))]
    channels = model.polarities if isinstance(model, SgmQModel) else model.input_shape[0]
    data = bin_samples(samples, dt_us=model.dt_us, sensor_size=model.sensor_size, downsample=model.downsample,
                       channels=channels)
    out = []
    for i, s in enumerate(samples):
        f = data.frames[i, : data.lengths[i]].reshape(int(data.lengths[i]), -1)
        ev = s.events[s.events["t"] < s.duration_us]  # what bin_samples binned
        out.append(Gesture(int(s.label), np.ascontiguousarray(f, dtype=np.uint16), ev, s.duration_us / 1e6))
    return out


def encode_job(sgm: bytes, gestures: list[Gesture], flags: int, result_path: str, kind: str,
               warmup: float = 0.2, tensors: list[np.ndarray] | None = None) -> bytes:
    """dc_job.h layout: header, model (8-aligned), gesture records, result path. ``warmup``:
    the scores skip floor(warmup T) steps (0 for an imported network: its runtime scores
    from the first whole window itself). ``tensors``: per gesture the int8 input tensors
    of the dense kind (the reference's, see `_reference_qnet`)."""
    buf = bytearray(HEADER.size)
    buf += b"\0" * (-len(buf) % 8)
    model_off = len(buf)
    buf += sgm
    buf += b"\0" * (-len(buf) % 8)
    data_off = len(buf)
    for i, g in enumerate(gestures):
        t = len(g.frames)
        if kind in DENSE_KINDS:  # the input tensors of the steps with a whole window, one per frame
            x = tensors[i]
            buf += struct.pack("<II", len(x), 0) + x.tobytes()
            buf += b"\0" * (-len(buf) % 4)
            continue
        buf += struct.pack("<II", t, int(math.floor(warmup * t)))  # intref.scores: steps >= floor(0.2 T)
        if kind == "events":
            if len(g.events) and max(int(g.events["x"].max()), int(g.events["y"].max())) > 255:
                raise BenchError("events kind: dc_event_rec holds x, y < 256")
            rec = np.zeros(len(g.events), EVENT_REC)
            for name in ("t", "x", "y", "p"):
                rec[name] = g.events[name]
            buf += struct.pack("<II", len(rec), 0) + rec.tobytes()
            continue
        for row in g.frames:
            idx = np.flatnonzero(row)
            pairs = np.empty((len(idx), 2), "<u2")
            pairs[:, 0], pairs[:, 1] = idx, row[idx]
            buf += struct.pack("<H", len(idx)) + pairs.tobytes()
        buf += b"\0" * (-len(buf) % 4)
    path_off = len(buf)
    buf += result_path.encode() + b"\0"
    buf += b"\0" * (-len(buf) % 8)
    HEADER.pack_into(buf, 0, JOB_MAGIC, JOB_VERSION, flags, KINDS[kind], model_off, len(sgm), len(gestures), data_off,
                     len(buf), path_off)
    if len(buf) > JOB_LIMIT:
        raise BenchError(f"job of {len(buf)} B exceeds the {JOB_LIMIT} B at 0x{JOB_ADDR:08x}: use --gestures")
    return bytes(buf)


def parse_result(data: bytes, n_gestures: int) -> dict:
    """The driver's result file (dc_job.h): per-gesture records, then the trailer."""
    off, gestures = 0, []
    if len(data) < TRAILER.size:
        raise BenchError(f"result file of {len(data)} B: the driver stopped early")
    names = ("magic", "status", "n_gestures", "n_classes", "arena_bytes", "arena_capacity", "stack_used",
             "stack_size", "frame_inputs", "reserved", "ticks_load")
    tr = dict(zip(names, TRAILER.unpack_from(data, len(data) - TRAILER.size)))
    if tr["magic"] != RESULT_MAGIC:
        raise BenchError("result file: bad trailer magic")
    nc = tr["n_classes"]
    want = TRAILER.size + (n_gestures * (GESTURE.size + 8 * nc) if tr["status"] == 0 else 0)
    if len(data) != want:
        raise BenchError(f"result file of {len(data)} B, expected {want} B ({n_gestures} gestures, {nc} classes)")
    for _ in range(n_gestures if tr["status"] == 0 else 0):
        v = GESTURE.unpack_from(data, off)
        off += GESTURE.size
        scores = np.frombuffer(data, "<i8", nc, off)
        off += 8 * nc
        gestures.append({"steps": v[0], "prediction": v[1], "hash": v[2], "ram": v[3], "synops": v[4],
                         "events_in": v[5],
                         "events_dropped": v[6], "spikes0": v[7], "ticks": v[8], "scores": scores})
    return {"trailer": tr, "gestures": gestures}


def run_qemu(elf: Path, job: bytes, workdir: Path, *, plugin: Path | None, icount: bool) -> tuple[dict, str, float]:
    """One QEMU run; returns (parsed result, the plugin's log, wall seconds)."""
    job_file, log = workdir / "job.bin", workdir / "plugin.log"
    job_file.write_bytes(job)
    result_path = workdir / "result.bin"
    log.unlink(missing_ok=True)
    result_path.unlink(missing_ok=True)
    cmd = [*QEMU_BASE, "-kernel", str(elf), "-device", f"loader,file={job_file},addr=0x{JOB_ADDR:08x}"]
    if plugin is not None:
        cmd += ["-plugin", f"{plugin},inline=on", "-d", "plugin", "-D", str(log)]
    if icount:
        cmd += ["-icount", "shift=0"]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=QEMU_TIMEOUT_S, check=False)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise BenchError(f"{' '.join(cmd)}: exit {p.returncode} {p.stderr.strip()[-400:]}")
    res = parse_result(result_path.read_bytes(), HEADER.unpack_from(job)[6])
    if res["trailer"]["status"] != 0:
        raise BenchError(f"driver status {res['trailer']['status']}")
    return res, log.read_text() if plugin is not None else "", wall


def insn_count(log: str) -> int:
    hit = re.search(r"^insns: (\d+)$", log, re.M)
    if not hit:
        raise BenchError(f"no instruction count in the insn plugin's output: {log[-200:]!r}")
    return int(hit[1])


def profile(elf: Path, job: bytes, workdir: Path, plugin: Path) -> tuple[dict[str, int], int]:
    """Instructions per function: hotblocks' (start pc, instructions, executions) of every
    translation block, attributed to the function symbol that holds the block."""
    _, log, _ = run_qemu(elf, job, workdir, plugin=plugin, icount=False)
    nm = subprocess.run(["arm-none-eabi-nm", "-n", "--defined-only", str(elf)], capture_output=True,
                        text=True, check=True).stdout
    funcs = []  # (start, name) of every code symbol; libgcc's assembly ones have no size
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "Tt":
            funcs.append((int(parts[0], 16) & ~1, parts[2]))
    starts = [f[0] for f in funcs]
    per: dict[str, int] = {}
    total = 0
    for hit in re.finditer(r"^0x([0-9a-f]+), \d+, (\d+), (\d+)$", log, re.M):
        pc, n = int(hit[1], 16), int(hit[2]) * int(hit[3])
        total += n
        k = int(np.searchsorted(starts, pc, side="right")) - 1
        name = funcs[k][1] if k >= 0 else f"?0x{pc:x}"
        per[name] = per.get(name, 0) + n
    return dict(sorted(per.items(), key=lambda kv: -kv[1])), total


# --------------------------------------------------------------------------- truth
def fnv_logits(logits: np.ndarray) -> int:
    h = FNV_BASIS
    for v in logits.astype(np.int64).ravel() & 0xFFFFFFFF:
        h = ((h ^ int(v)) * FNV_PRIME) & 0xFFFFFFFF
    return h


def reference(model: SgmModel | SgmQModel, gestures: list[Gesture]) -> list[dict]:
    """pysg.intref (an imported network: pysg.qnet.QnetRef; a spiking network:
    pysg.engines.snn.SnnRef) on each gesture: what the device must reproduce."""
    if isinstance(model, SgmQModel):
        return _reference_qnet(model, gestures)
    if isinstance(model, SgmSnnModel):
        return _reference_snn(model, gestures)
    out = []
    for g in gestures:
        r = intref.run(model, g.frames[:, None])
        t = len(g.frames)
        sc = intref.scores(r.logits, np.array([t]))[0]
        out.append({"hash": fnv_logits(r.logits[:, 0]), "hash_last": fnv_logits(r.logits[-1, 0]),
                    "scores": sc, "prediction": int(sc.argmax()),
                    "synops": int(r.synops.sum()), "spikes0": int(r.spikes[0].sum()) if r.spikes else 0,
                    "events_in": int(g.frames.astype(np.int64).sum()), "steps": t})
    return out


def dense_reference(model: SgmQModel, ref: list[dict]) -> list[dict]:
    """What the dense kernels must give, from the delta reference's per-step logits
    (`_reference_qnet`): the logits of every frame (steps W - 1 on; both equal TFLite
    Micro's), their sums, the argmax; "synops" here are the dense MACs of those frames."""
    from pysg.qnet import DeltaNetwork

    macs = DeltaNetwork(model).dense_macs_per_frame
    out = []
    for r in ref:
        lg = r["logits"][model.window - 1:]
        out.append({"hash": fnv_logits(lg), "scores": lg.astype(np.int64).sum(axis=0),
                    "prediction": int(lg.astype(np.int64).sum(axis=0).argmax()), "synops": macs * len(lg),
                    "spikes0": 0, "events_in": r["events_in"], "steps": len(lg)})
    return out


def _reference_qnet(model: SgmQModel, gestures: list[Gesture]) -> list[dict]:
    from pysg.qnet import QnetRef

    q = QnetRef(model)
    shape = (model.polarities,) + model.input_shape[:2]
    out = []
    for g in gestures:
        q.reset()
        logits, tensors, synops, deltas = [], [], 0, 0
        for s, f in enumerate(g.frames):
            logits.append(q.step_counts(f.reshape(shape)))
            synops += q.net.last.synops
            deltas += q.net.last.input_events  # the input tensor's deltas: entry 0's "spikes"
            if s >= q.window - 1:  # a whole window: the frame the dense kind runs
                tensors.append(q.net._x.astype(np.int8).reshape(model.input_shape))
        lg = np.array(logits)
        out.append({"hash": fnv_logits(lg), "hash_last": fnv_logits(lg[-1]), "scores": q.scores.copy(),
                    "prediction": int(q.scores.argmax()), "synops": synops, "spikes0": deltas,
                    "events_in": int(g.frames.astype(np.int64).sum()), "steps": len(g.frames), "logits": lg,
                    "tensors": np.array(tensors, np.int8).reshape((-1,) + model.input_shape)})
    return out


def _reference_snn(model: SgmSnnModel, gestures: list[Gesture]) -> list[dict]:
    """A version 3 model (NIR's layered spiking networks): every step scored (whole window)."""
    from pysg.engines.snn import SnnRef

    out = []
    for g in gestures:
        ref = SnnRef(model)
        logits, synops, spikes0 = [], 0, 0
        for f in g.frames:
            lg, sp, so = ref.step(f)
            logits.append(lg)
            synops += so
            spikes0 += sp[0]
        lg = np.array(logits, np.int64).astype(np.int32)
        sc = lg.astype(np.int64).sum(axis=0)
        out.append({"hash": fnv_logits(lg), "hash_last": fnv_logits(lg[-1]), "scores": sc,
                    "prediction": int(sc.argmax()), "synops": synops, "spikes0": spikes0,
                    "events_in": int(g.frames.astype(np.int64).sum()), "steps": len(g.frames)})
    return out


def check_against(dev: dict, ref: list[dict], kind: str) -> None:
    """Every gesture's steps, logits hash (frames: of every step; events: of the last),
    prediction, synaptic ops, spikes, events and scores equal pysg.intref's."""
    if len(dev["gestures"]) != len(ref):
        raise BenchError(f"device returned {len(dev['gestures'])} gestures, expected {len(ref)}")
    for i, (d, r) in enumerate(zip(dev["gestures"], ref)):
        keys = ("steps", "hash", "prediction") if kind in DENSE_KINDS else \
            ("steps", "hash", "prediction", "synops", "spikes0", "events_in")
        for key in keys:
            want = r["hash_last"] if key == "hash" and kind == "events" else r[key]
            if d[key] != want:
                raise BenchError(f"gesture {i}: device {key} {d[key]} != pysg.intref {want}")
        if not np.array_equal(d["scores"], r["scores"]):
            raise BenchError(f"gesture {i}: device scores {d['scores'].tolist()} != intref {r['scores'].tolist()}")


# --------------------------------------------------------------------------- cases
@dataclass
class Case:
    kind: str
    opt: str
    dt_ms: float
    steps: int
    seconds: float
    synops: int
    events: int
    spikes: int
    correct: int
    run_insns: list[int] = field(default_factory=list)
    base_insns: list[int] = field(default_factory=list)
    icount_insns: int | None = None
    qemu_wall_s: float = 0.0

    @property
    def insns(self) -> int:
        return self.run_insns[0] - self.base_insns[0]

    def figures(self) -> dict:
        ips = self.insns / self.seconds
        return {"kind": self.kind, "opt": self.opt, "dt_ms": self.dt_ms, "inference_insns": self.insns,
                "insns_per_s_input": ips, "insns_per_synop": self.insns / self.synops,
                "insns_per_step": self.insns / self.steps, "insns_per_event": self.insns / self.events,
                "x_realtime_168MHz_cpi1": TARGET_HZ / ips, "x_realtime_168MHz_cpi1.5": TARGET_HZ / (1.5 * ips),
                "cpu_load_168MHz_cpi1": ips / TARGET_HZ, "deterministic": len(set(self.run_insns)) == 1
                and len(set(self.base_insns)) == 1, "icount_cross_check": self.icount_insns}


def measure(kind: str, opt: str, dt: float, elf: Path, jobs: dict[int, bytes], gestures: list[Gesture],
            ref: list[dict], work: Path, plugin: Path, args, meta: dict, profiles: dict) -> Case:
    """Run and baseline jobs --repeat times under the insn plugin, the -icount cross-check
    and optionally the per-function profile, for one (kind, opt, dt)."""
    c = Case(kind, opt, dt, sum(r["steps"] for r in ref), sum(g.seconds for g in gestures),
             sum(r["synops"] for r in ref), sum(r["events_in"] for r in ref), sum(r["spikes0"] for r in ref),
             meta["correct"])
    for _ in range(args.repeat):
        res, log, wall = run_qemu(elf, jobs[FLAG_RUN], work, plugin=plugin, icount=False)
        check_against(res, ref, kind)
        c.run_insns.append(insn_count(log))
        c.qemu_wall_s = wall
        _, log_b, _ = run_qemu(elf, jobs[0], work, plugin=plugin, icount=False)
        c.base_insns.append(insn_count(log_b))
        meta[f"stack_used_{kind}_{opt}"] = res["trailer"]["stack_used"]
    if not args.no_icount:
        res_i, _, _ = run_qemu(elf, jobs[FLAG_RUN | FLAG_SYSTICK], work, plugin=None, icount=True)
        check_against(res_i, ref, kind)
        res_ib, _, _ = run_qemu(elf, jobs[FLAG_SYSTICK], work, plugin=None, icount=True)
        ticks = sum(g["ticks"] for g in res_i["gestures"]) - sum(g["ticks"] for g in res_ib["gestures"])
        c.icount_insns = ticks * (1_000_000_000 // SYSCLK_HZ)  # shift=0: 1 ns per instruction
    if args.profile:
        per, total = profile(elf, jobs[FLAG_RUN], work, build_plugin("hotblocks")[0])
        profiles[f"{kind} -{opt} {dt:g} ms"] = {"per_function": per, "total": total, "run_insns": c.run_insns[0],
                                                "steps": c.steps}
    if not args.json:
        f = c.figures()
        print(f"{kind} dt {dt:g} ms -{opt}: {c.insns:,} instructions for {c.seconds:.1f} s of gestures = "
              f"{f['insns_per_s_input'] / 1e6:.2f} M/s, {f['insns_per_synop']:.2f}/synop; runs "
              f"{c.run_insns} baselines {c.base_insns}; icount x-check {c.icount_insns}", flush=True)
    return c


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dt-ms", type=float, nargs="+", default=[10.0, 1.0])
    ap.add_argument("--kind", nargs="+", default=["frames", "events"], choices=list(KINDS),
                    help="frames: pre-binned frames through sg_step; events: packets of events through sg_feed; "
                         "dense (version 2 --model): its layers per frame through the TFLite-exact dense kernels")
    ap.add_argument("--opt", nargs="+", default=["O2", "Os"], choices=["O2", "Os"])
    ap.add_argument("--gestures", type=int, default=None, help="first N gestures (default: all of the split)")
    ap.add_argument("--data", type=Path, default=BUNDLED_SAMPLES,
                    help="a DVS128-Gesture-layout folder whose test split is the input (default: the bundled "
                         "recording; a 128 x 128 sensor, as the models' is)")
    ap.add_argument("--model", type=Path, default=None,
                    help=".sgm file (runs at its own dt) instead of the bundled model")
    ap.add_argument("--plugin", type=Path, default=None, help="a built libinsn.so (default: build and cache)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per case; the counts must be identical")
    ap.add_argument("--no-icount", action="store_true", help="skip the -icount shift=0 + SysTick cross-check")
    ap.add_argument("--profile", action="store_true", help="instructions per function (hotblocks plugin)")
    ap.add_argument("--cmsis-nn", type=Path, default=None,
                    help="--kind cmsis: a checkout of ARM-software/CMSIS-NN (or its bare git mirror)")
    ap.add_argument("--cmsis-core", type=Path, default=None,
                    help="--kind cmsis: a checkout of ARM-software/CMSIS_6 (or its CMSIS/Core/Include, or its "
                         "bare git mirror)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.repeat < 1 or (args.gestures is not None and args.gestures < 1):
        ap.error("--repeat and --gestures must be positive")
    if "cmsis" in args.kind and (args.cmsis_nn is None or args.cmsis_core is None):
        ap.error("--kind cmsis needs --cmsis-nn DIR (a checkout of ARM-software/CMSIS-NN) and --cmsis-core DIR "
                 "(a checkout of ARM-software/CMSIS_6)")

    plugin, pinfo = (args.plugin, {"plugin": str(args.plugin)}) if args.plugin else build_plugin("insn")
    if not Path(plugin).exists():
        raise BenchError(f"plugin {plugin} not found")
    models: list[tuple[float, bytes]] = []
    if args.model is not None:
        data = args.model.read_bytes()
        models.append((load_sgm(data).dt_us / 1000, data))
    else:
        net = Network.load(BUNDLED_MODEL)
        models += [(dt, export_network(net, dt_us=int(round(dt * 1000)))) for dt in args.dt_ms]

    work = Path(args.workdir or tempfile.mkdtemp(prefix="pysg-devcost-"))
    work.mkdir(parents=True, exist_ok=True)
    arena = max(load_sgm(d).arena_bytes for _, d in models)
    elves = build_driver(work / "build", arena)
    elves_cmsis = build_cmsis_driver(work / "build", arena, args.cmsis_nn, args.cmsis_core) \
        if "cmsis" in args.kind else {}
    sizes = {opt: elf_sizes(elves[opt]) for opt in args.opt}
    sizes_cmsis = {opt: elf_sizes(elves_cmsis[opt]) for opt in args.opt} if elves_cmsis else {}
    su = {}
    for opt in args.opt:  # deepest frames by -fstack-usage (static, per function)
        rows = []
        for f in (work / "build" / opt).glob("*.su"):
            for line in f.read_text().splitlines():
                parts = line.split("\t")
                rows.append((int(parts[1]), parts[0].split(":")[-1]))
        su[opt] = sorted(rows, reverse=True)[:3]

    cases, meta, profiles = [], {}, {}
    result_path = str(work / "result.bin")
    for dt, sgm in models:
        m = load_sgm(sgm)
        gestures = load_gestures(m, args.gestures, args.data)
        ref = reference(m, gestures)
        ref_dense = dense_reference(m, ref) if isinstance(m, SgmQModel) else None
        tensors = [r.pop("tensors", None) for r in ref]
        for r in ref:
            r.pop("logits", None)
        labels = [g.label for g in gestures]
        meta[dt] = {"model_bytes": len(sgm), "arena_bytes": m.arena_bytes, "gestures": len(gestures),
                    "seconds": sum(g.seconds for g in gestures), "correct": sum(r["prediction"] == lab
                                                                              for r, lab in zip(ref, labels))}
        for kind in args.kind:
            warm = 0.0 if isinstance(m, (SgmQModel, SgmSnnModel)) else 0.2  # their kinds score every step
            if kind in DENSE_KINDS and not isinstance(m, SgmQModel):
                raise BenchError(f"--kind {kind} runs an imported network's layers: give a version 2 --model")
            jobs = {flags: encode_job(sgm, gestures, flags, result_path, kind, warm, tensors)
                    for flags in (FLAG_RUN, 0, FLAG_RUN | FLAG_SYSTICK, FLAG_SYSTICK)}
            meta[dt][f"job_bytes_{kind}"] = len(jobs[FLAG_RUN])
            ref_k = ref_dense if kind in DENSE_KINDS else ref
            for opt in args.opt:
                elf = (elves_cmsis if kind == "cmsis" else elves)[opt]
                cases.append(measure(kind, opt, dt, elf, jobs, gestures, ref_k, work, plugin, args, meta[dt], profiles))

    out = {"machine": {"uname_m": platform.machine(), "nproc": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                       **pinfo},
           "cases": [c.figures() | {"run_insns": c.run_insns, "baseline_insns": c.base_insns, "steps": c.steps,
                                    "seconds": c.seconds, "synops": c.synops, "events": c.events,
                                    "spikes": c.spikes, "correct": c.correct, "qemu_wall_s": c.qemu_wall_s}
                     for c in cases],
           "models": meta, "sizes": sizes, "stack_usage_top": su, "profiles": profiles}
    if elves_cmsis:
        out["sizes_cmsis"] = sizes_cmsis
        out["cmsis"] = {"nn": str(args.cmsis_nn), "nn_commit": cmsis_commit(args.cmsis_nn),
                        "core": str(args.cmsis_core), "core_commit": cmsis_commit(args.cmsis_core)}
    deterministic = all(c.figures()["deterministic"] for c in cases)
    if args.json:
        print(json.dumps(out, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
        return 0 if deterministic else 1
    print()
    print(f"machine {out['machine']}")
    for dt, mm in meta.items():
        print(f"dt {dt:g} ms: model {mm['model_bytes']} B, arena {mm['arena_bytes']} B (goal <= {GOAL_ARENA}), "
              f"{mm['gestures']} gestures, {mm['seconds']:.1f} s, {mm['correct']} predicted right; jobs "
              f"{ {k[10:]: v for k, v in mm.items() if k.startswith('job_bytes_')} } B")
    hdr = (f"{'kind':<7}{'opt':<4}{'dt ms':>6}{'insns':>14}{'M insn/s in':>13}{'/synop':>8}{'/step':>9}{'/event':>8}"
           f"{'xRT@168 cpi1':>14}{'cpi1.5':>8}{'same':>6}{'icount':>14}")
    print(hdr)
    for c in cases:
        f = c.figures()
        print(f"{c.kind:<7}{c.opt:<4}{c.dt_ms:>6g}{c.insns:>14,}{f['insns_per_s_input'] / 1e6:>13.2f}"
              f"{f['insns_per_synop']:>8.2f}{f['insns_per_step']:>9.0f}{f['insns_per_event']:>8.1f}"
              f"{f['x_realtime_168MHz_cpi1']:>14.1f}{f['x_realtime_168MHz_cpi1.5']:>8.1f}"
              f"{'yes' if f['deterministic'] else 'NO':>6}{c.icount_insns if c.icount_insns is not None else '-':>14}")
    for opt, s in sizes.items():
        stack = {k[11:]: v for mm in meta.values() for k, v in mm.items()
                 if k.startswith("stack_used_") and k.endswith(opt)}
        print(f"-{opt}: text {s['text']} data {s['data']} bss {s['bss']} (+ stack reserve {s['stack_reserve']}); "
              f"runtime code {s['runtime_code']} B; stack used (B) "
              f"{stack}; "
              f"deepest frames {su[opt]}")
    for opt, s in sizes_cmsis.items():
        print(f"cmsis -{opt}: text {s['text']} data {s['data']} bss {s['bss']}; CMSIS-NN code "
              f"{cmsis_code(s)} B (arm_*.o + dc_cmsis.o); CMSIS-NN {out['cmsis']['nn_commit'][:12]}")
    for name, pr in profiles.items():
        steps = pr["steps"]
        print(f"profile -{name}: {pr['total']:,} instructions in blocks (insn plugin: {pr['run_insns']:,}); "
              "per function, per step:")
        print("   " + ", ".join(f"{k} {v / steps:,.0f} ({100 * v / pr['total']:.1f} %)"
                                for k, v in list(pr["per_function"].items())[:9]))
    worst = max(c.figures()["insns_per_s_input"] for c in cases)
    print(f"goal <= {GOAL_INSN_PER_S / 1e6:.0f} M instructions per second of input: "
          f"{'met' if worst <= GOAL_INSN_PER_S else 'NOT met'} (worst {worst / 1e6:.2f} M/s); arena "
          f"{'met' if arena <= GOAL_ARENA else 'NOT met'} ({arena} B)")
    print(f"work files in {work}")
    if not deterministic:
        print("instruction counts differed between repeated runs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"device_cost: {e}", file=sys.stderr)
        sys.exit(1)
