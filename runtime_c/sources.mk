# SPDX-License-Identifier: MIT
# The runtime's source list: the one place every build takes it from (runtime_c/Makefile,
# firmware/Makefile and posix.mk, bench/device_cost/Makefile, and the cffi builders
# pysg/_build_runtime.py and pysg/_build_device.py, which parse this file).
# Paths are relative to runtime_c/. Keep the format plain: `NAME := words`, one
# assignment per line (a trailing backslash continues it), comments after `#`.
# File names are unique across folders (bench/device_cost compiles into one directory).

# What the bootloader links: CRC-32 and the status names.
SG_CRC_SRCS := src/core/sg_status.c src/load/sg_crc32.c
# The device path (no heap, no stdio): core (status, the table of kinds, model queries,
# runtime state, time base), load (CRC-32, header and labels, UTF-8), then one line per
# model kind (src/engines/<kind>/).
SG_DEVICE_SRCS := src/core/sg_status.c src/core/sg_engines.c src/core/sg_model.c \
                  src/core/sg_runtime.c src/core/sg_time.c \
                  src/load/sg_crc32.c src/load/sg_load.c src/load/sg_utf8.c \
                  src/engines/gamma/sg_gamma_engine.c src/engines/gamma/sg_gamma_load.c src/engines/gamma/sg_gamma_kernels.c src/engines/gamma/sg_gamma_neuron.c src/engines/gamma/sg_gamma_step.c src/engines/gamma/sg_gamma_input.c src/engines/gamma/sg_gamma_frames.c \
                  src/engines/qnet/sg_qnet_engine.c src/engines/qnet/sg_qnet_load.c src/engines/qnet/sg_qnet_step.c src/engines/qnet/sg_qnet_input.c src/engines/qnet/sg_qkernels.c \
                  src/engines/snn/sg_snn_engine.c src/engines/snn/sg_snn_load.c src/engines/snn/sg_snn_fields.c src/engines/snn/sg_snn_step.c src/engines/snn/sg_snn_kernels.c
# Host-only input handling: event-file decoders and preprocessing filters.
SG_HOST_SRCS := src/host/sg_decode.c src/host/sg_preprocess.c
# Every header (public ones in include/, private ones beside the sources, included by
# relative path) and the include folders a build passes with -I.
SG_HDRS := include/sg_format.h include/sg_runtime.h include/sg_preprocess.h include/sg_decode.h \
           include/sg_qkernels.h \
           src/core/sg_internal.h src/core/sg_engine.h src/core/sg_counts.h src/load/sg_load.h \
           src/engines/gamma/sg_gamma.h src/engines/qnet/sg_qnet.h src/engines/snn/sg_snn.h
SG_INC_DIRS := include
