# SPDX-License-Identifier: MIT
"""cffi builder of `pysg._sg_runtime`: the C runtime (runtime_c/) in API mode.

setup.py runs it through `cffi_modules=["pysg/_build_runtime.py:ffibuilder"]`; it
compiles the runtime's sources (runtime_c/sources.mk: SG_DEVICE_SRCS and
SG_HOST_SRCS) together with the cffi glue into one extension
module (`-std=c99 -O2`). For a quick in-place build: `python pysg/_build_runtime.py`.

One source of truth: the cdef is generated from the public headers (HEADERS:
runtime_c/include/sg_runtime.h, then sg_preprocess.h; comments and preprocessor lines
stripped, the integer `#define SG_*` constants kept), so the declarations can never
drift from the headers; API mode then makes the C compiler check every struct layout
and prototype against the real headers.
"""
from __future__ import annotations

import glob
import hashlib
import os
import re

from cffi import FFI

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIME_DIR = os.path.join(ROOT, "runtime_c")
HEADER = os.path.join(RUNTIME_DIR, "include", "sg_runtime.h")
# every public header of the cdef, in include order (sg_preprocess.h uses sg_runtime.h's types)
HEADERS = [HEADER, os.path.join(RUNTIME_DIR, "include", "sg_preprocess.h"),
           os.path.join(RUNTIME_DIR, "include", "sg_decode.h"),
           os.path.join(RUNTIME_DIR, "include", "sg_qkernels.h")]
MODULE = "pysg._sg_runtime"
CFLAGS = ["-std=c99", "-O2"]

SOURCES_MK = os.path.join(RUNTIME_DIR, "sources.mk")

_DEFINE = re.compile(r"define\s+(SG_\w+)\s+(\d+)[uUlL]*\s*$")


def runtime_sources(name: str, sources_mk: str = SOURCES_MK) -> list[str]:
    """The files of variable @name in runtime_c/sources.mk (the runtime's one source list),
    as absolute paths. Raises RuntimeError naming the file when the variable is missing."""
    with open(sources_mk, encoding="utf-8") as f:
        text = re.sub(r"\\\n", " ", f.read())
    for line in text.splitlines():
        m = re.match(r"\s*(\w+)\s*:=([^#]*)", line)
        if m and m[1] == name:
            return [os.path.join(os.path.dirname(sources_mk), w) for w in m[2].split()]
    raise RuntimeError(f"{sources_mk}: no variable {name}")


def cdef_from_header(text: str) -> str:
    """The header as cffi cdef text: comments removed, `#ifdef __cplusplus` blocks and
    every other preprocessor line dropped, integer `#define SG_NAME <number>` kept."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    out: list[str] = []
    in_cplusplus = False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#"):
            directive = s[1:].strip()
            if re.match(r"ifdef\s+__cplusplus\b", directive):
                in_cplusplus = True
            elif in_cplusplus and directive.startswith("endif"):
                in_cplusplus = False
            else:
                m = _DEFINE.match(directive)
                if m and not in_cplusplus:
                    out.append(f"#define {m[1]} {m[2]}")
            continue
        if not in_cplusplus and s:
            out.append(line.rstrip())
    return "\n".join(out) + "\n"


def function_names(text: str) -> list[str]:
    """Names of the functions the header declares (for the sync test)."""
    cdef = cdef_from_header(text)
    return re.findall(r"\b(sg_\w+)\s*\([^;{]*\)\s*;", cdef)


# Declared next to the header's API: the digest of the C files the module was built from,
# so a stale in-place build (C sources edited after `pip install -e .`) can be detected.
EXTRA_CDEF = "const char *pysg_sources_sha256(void);\n"


def source_files() -> list[str]:
    """Every C file the extension is built from (header, sources, private headers)."""
    return sorted(set(runtime_sources("SG_HDRS") + runtime_sources("SG_DEVICE_SRCS")
                      + runtime_sources("SG_HOST_SRCS")))


def sources_digest() -> str:
    """sha256 over the C files' names (relative to runtime_c/) and contents."""
    h = hashlib.sha256()
    for path in source_files():
        h.update(os.path.relpath(path, RUNTIME_DIR).replace(os.sep, "/").encode() + b"\0")
        with open(path, "rb") as f:
            h.update(f.read() + b"\0")
    return h.hexdigest()


def make_builder(relative: bool = True) -> FFI:
    """The configured builder. Paths are relative to setup.py's folder when building from
    there (setuptools wants relative source paths, e.g. for the sdist), absolute otherwise
    (`ffi.compile` changes into its tmpdir)."""

    def _rel(path: str) -> str:
        return os.path.relpath(path, ROOT) if relative and os.path.abspath(os.getcwd()) == ROOT else path

    cdef = ""
    for path in HEADERS:
        with open(path, encoding="utf-8") as f:
            cdef += cdef_from_header(f.read())
    builder = FFI()
    builder.cdef(cdef + EXTRA_CDEF)
    srcs = sorted(set(runtime_sources("SG_DEVICE_SRCS") + runtime_sources("SG_HOST_SRCS")))
    missing = [p for p in srcs if not os.path.exists(p)]
    if not srcs or missing:
        raise RuntimeError(f"cannot build {MODULE}: C sources missing from {RUNTIME_DIR}: {missing or 'all'}")
    srcs = [_rel(p) for p in srcs]
    builder.set_source(
        MODULE,
        "".join(f'#include "{os.path.basename(h)}"\n' for h in HEADERS)
        + f'static const char *pysg_sources_sha256(void) {{ return "{sources_digest()}"; }}\n',
        sources=srcs,
        include_dirs=[_rel(d) for d in runtime_sources("SG_INC_DIRS")],
        depends=sorted(_rel(h) for h in runtime_sources("SG_HDRS")) + [_rel(SOURCES_MK)],
        extra_compile_args=CFLAGS,
    )
    return builder


def ffibuilder() -> FFI:
    """The `cffi_modules` entry point (cffi calls it when setup.py runs): importing this
    module stays cheap and works before runtime_c/src exists (the sync test needs
    only `cdef_from_header`)."""
    return make_builder()


if __name__ == "__main__":  # in-place build next to this file, for development
    make_builder(relative=False).compile(tmpdir=os.path.join(ROOT, "build", "cffi"), verbose=True)
    import shutil

    for old in glob.glob(os.path.join(ROOT, "pysg", "_sg_runtime*.so")):  # e.g. the abi3 one of `pip install -e .`
        os.remove(old)
    for so in glob.glob(os.path.join(ROOT, "build", "cffi", "pysg", "_sg_runtime*.so")):
        shutil.copy(so, os.path.join(ROOT, "pysg"))
