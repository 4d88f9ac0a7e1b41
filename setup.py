# SPDX-License-Identifier: MIT
"""Build and install pysg, with the C runtime (runtime_c/) as the cffi extension
`pysg._sg_runtime` (API mode, built by pysg/_build_runtime.py from the sources runtime_c/sources.mk lists), and the
POSIX emulated device as `pysg._sg_device` (pysg/_build_device.py: runtime + firmware/)."""
from setuptools import find_packages, setup

setup(
    name="pysg",
    version="0.1.0",
    description="Embedded edge-inference runtime for SpikingGamma spiking neural networks",
    python_requires=">=3.10",
    packages=find_packages(include=["pysg", "pysg.*"]) + ["pysg.converters"],
    # the top-level converters/ folder installs as pysg.converters (no top-level module of
    # that name to collide with another distribution's)
    package_dir={"pysg.converters": "converters"},
    package_data={"pysg": ["data/*.npz", "data/samples/*"]},
    install_requires=[
        "numpy>=1.24",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "lz4>=4.0",        # AEDAT 4 packets (LZ4 frames)
        "zstandard>=0.20", # AEDAT 4 packets (Zstandard)
        "cffi>=1.15",      # the C runtime extension pysg._sg_runtime
        "pyserial>=3.5",   # device ports: paths, ptys and socket:// URLs
        "cobs>=1.2",       # device protocol framing (docs/PROTOCOL.md)
        "scipy>=1.10",     # pysg synth: the renderer's image filters
        "tflite>=2.10",    # reading int8 .tflite graphs (pysg convert; pure Python)
        "flatbuffers>=2.0",  # the .tflite schema's runtime (reader and writer)
    ],
    setup_requires=["cffi>=1.15"],
    cffi_modules=["pysg/_build_runtime.py:ffibuilder", "pysg/_build_device.py:ffibuilder"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6", "evutils==0.3.18", "psutil>=5.9",
                 "faery==0.7.1", "dv-processing==2.0.4"],
        # The tests also need tflite-micro (the bit-exact reference, x86-64 only) and
        # pymicro-wakeword (real int8 models): both pinned in requirements-ci.txt.
        # the TFLite interpreter of the baseline (pysg.converters.tflite_interpreter; the frozen
        # tflite-runtime is used instead when that is what is installed)
        "litert": ["ai-edge-litert>=2.3"],
        # live iniVation cameras (DVS128, DAVIS, DVXplorer) for `pysg run --source camera`
        "camera": ["dv-processing>=2.0"],
        # `pysg train --backend torch` (CPU or CUDA; DistributedDataParallel)
        "torch": ["torch>=2.13"],
        # `pysg convert model.nir` and `pysg export --nir`
        "nir": ["nir>=1.0.4"],
        # reading tonic datasets already on disk
        "tonic": ["tonic>=1.7"],
    },
    entry_points={"console_scripts": ["pysg = pysg.cli:main"]},
)
