# SPDX-License-Identifier: MIT
"""How the benches measure: best-of-N wall time, instruction counts of the C runtime
alone under valgrind's callgrind (the driver bench/sg_drive.c), and an engine run in a
fresh subprocess (its own peak RSS)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 1024  # events per sg_feed call in the C driver (a USB packet's worth)


def best(fn, repeat: int):
    """(fastest wall time of ``repeat`` calls, the last call's result)."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def callgrind(sgm: bytes, ev: np.ndarray, workdir: Path) -> dict:
    """Compile bench/sg_drive.c with the runtime sources (-O2, as the host library) and
    count instructions of sg_drive_run (feeding and stepping only) under callgrind."""
    from pysg._build_runtime import runtime_sources
    from pysg.runtime import as_sg_events

    src = runtime_sources("SG_DEVICE_SRCS")  # runtime_c/sources.mk: the one source list
    exe = workdir / "sg_drive"
    cmd = ["gcc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-O2", *(f"-I{d}" for d in runtime_sources("SG_INC_DIRS")),
           str(ROOT / "bench" / "sg_drive.c"), *src, "-o", str(exe)]
    subprocess.run(cmd, check=True)
    (workdir / "model.sgm").write_bytes(sgm)
    as_sg_events(ev).tofile(workdir / "events.bin")
    native = subprocess.run([str(exe), str(workdir / "model.sgm"), str(workdir / "events.bin"), str(CHUNK)],
                            check=True, capture_output=True, text=True).stdout
    out_file = workdir / "callgrind.out"
    vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", "--toggle-collect=sg_drive_run",
          str(exe), str(workdir / "model.sgm"), str(workdir / "events.bin"), str(CHUNK)]
    t = time.perf_counter()
    run = subprocess.run(vg, check=True, capture_output=True, text=True)
    vg_seconds = time.perf_counter() - t
    totals = re.search(r"^(?:summary|totals):\s*(\d+)", out_file.read_text(), re.M)
    stats = dict(zip(*[iter(native.split())] * 2))
    top = []
    if shutil.which("callgrind_annotate"):
        ann = subprocess.run(["callgrind_annotate", str(out_file)], capture_output=True, text=True).stdout
        for line in ann.splitlines():
            hit = re.match(r"^\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+\S*:(\w+)", line)
            if hit and len(top) < 6:
                top.append((hit[3], int(hit[1].replace(",", "")), float(hit[2])))
    return {"top": top, "instructions": int(totals[1]), "driver_stdout": native.strip(), "stats": stats,
            "valgrind_seconds": vg_seconds, "compile": " ".join(cmd), "valgrind": " ".join(vg),
            "callgrind_stderr_tail": run.stderr.strip().splitlines()[-1:] if run.stderr else []}


def run_worker(module: str, args: list[str]) -> dict:
    """``python -m <module> --worker ARGS`` from the repository root in a fresh process
    (one thread); its last stdout line is the JSON result."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", module, "--worker", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"worker {module} {args[:2]} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def status_kib(key: str) -> int:
    """A field of /proc/self/status in KiB (VmHWM: peak RSS, VmRSS: current RSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")
