# SPDX-License-Identifier: MIT
"""cffi builder of `pysg._sg_device`: the POSIX emulated device in API mode.

The same C as `make -C firmware posix`, from the same lists (runtime_c/sources.mk's
SG_DEVICE_SRCS; firmware/sources.mk's application, boot control and POSIX board without
its `main`), so `python -m pysg.device.posix` runs the device without a C toolchain at
run time.
setup.py runs it through `cffi_modules`; for a quick in-place build:
`python pysg/_build_device.py`.
"""
from __future__ import annotations

import glob
import importlib.util
import os

from cffi import FFI

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE_DIR = os.path.join(ROOT, "firmware")
RUNTIME_DIR = os.path.join(ROOT, "runtime_c")
FIRMWARE_SOURCES_MK = os.path.join(FIRMWARE_DIR, "sources.mk")
MODULE = "pysg._sg_device"
CFLAGS = ["-std=c99", "-O2"]

def _runtime_builder():
    """pysg/_build_runtime.py, loaded by path: cffi runs these builders as plain files."""
    spec = importlib.util.spec_from_file_location("_pysg_build_runtime", os.path.join(ROOT, "pysg", "_build_runtime.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CDEF = """
int sg_posix_main(int argc, char **argv);
"""


def firmware_sources(name: str) -> list[str]:
    """The files of variable @name in firmware/sources.mk (absolute paths)."""
    return _runtime_builder().runtime_sources(name, FIRMWARE_SOURCES_MK)


def source_files() -> list[str]:
    """The C files compiled into the extension (absolute paths); not the POSIX board's
    main() (SG_FW_POSIX_MAIN): the extension calls sg_posix_main() itself."""
    return sorted(_runtime_builder().runtime_sources("SG_DEVICE_SRCS") + firmware_sources("SG_FW_APP_SRCS")
                  + firmware_sources("SG_FW_BOOTCTL_SRCS") + firmware_sources("SG_FW_POSIX_SRCS"))


def include_dirs() -> list[str]:
    return firmware_sources("SG_FW_INC_DIRS") + firmware_sources("SG_FW_POSIX_INC_DIRS") \
        + _runtime_builder().runtime_sources("SG_INC_DIRS")


def make_builder(relative: bool = True) -> FFI:
    """The configured builder; paths relative to setup.py's folder when building from there."""

    def _rel(path: str) -> str:
        return os.path.relpath(path, ROOT) if relative and os.path.abspath(os.getcwd()) == ROOT else path

    srcs = source_files()
    missing = [p for p in srcs if not os.path.exists(p)]
    if missing or not srcs:
        raise RuntimeError(f"cannot build {MODULE}: missing C sources {missing or 'all'}")
    headers = sorted(firmware_sources("SG_FW_HDRS") + firmware_sources("SG_FW_POSIX_HDRS")
                     + _runtime_builder().runtime_sources("SG_HDRS") + [FIRMWARE_SOURCES_MK])
    builder = FFI()
    builder.cdef(CDEF)
    builder.set_source(
        MODULE,
        '#include "sg_posix.h"\n',
        sources=[_rel(p) for p in srcs],
        include_dirs=[_rel(d) for d in include_dirs()],
        depends=[_rel(h) for h in headers],
        extra_compile_args=CFLAGS,
    )
    return builder


def ffibuilder() -> FFI:
    """The `cffi_modules` entry point."""
    return make_builder()


if __name__ == "__main__":  # in-place build next to this file, for development
    import shutil

    make_builder(relative=False).compile(tmpdir=os.path.join(ROOT, "build", "cffi_device"), verbose=False)
    for old in glob.glob(os.path.join(ROOT, "pysg", "_sg_device*.so")):
        os.remove(old)
    for so in glob.glob(os.path.join(ROOT, "build", "cffi_device", "pysg", "_sg_device*.so")):
        shutil.copy(so, os.path.join(ROOT, "pysg"))
