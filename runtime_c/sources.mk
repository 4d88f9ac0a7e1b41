# SPDX-License-Identifier: MIT
# The runtime's source list: the one place every build takes it from (runtime_c/Makefile,
# firmware/Makefile and posix.mk, bench/device_cost/Makefile, and the cffi builders
# pysg/_build_runtime.py and pysg/_build_device.py, which parse this file).
# Paths are relative to runtime_c/. Keep the format plain: `NAME := words`, one
# assignment per line (a trailing backslash continues it), comments after `#`.

# What the bootloader links: CRC-32 and the status names.
SG_CRC_SRCS := src/sg_status.c src/sg_model.c
# The device path: loader, engines, time base, kernels (no heap, no stdio).
SG_DEVICE_SRCS := src/sg_status.c src/sg_model.c src/sg_kernels.c src/sg_runtime.c \
                  src/sg_qkernels.c src/sg_qnet.c
# Host-only input handling: event-file decoders and preprocessing filters.
SG_HOST_SRCS := src/sg_decode.c src/sg_preprocess.c
# Every header (public ones in include/, private ones beside the sources) and the
# include folders a build passes with -I.
SG_HDRS := include/sg_format.h include/sg_runtime.h include/sg_preprocess.h include/sg_decode.h \
           include/sg_qkernels.h src/sg_internal.h
SG_INC_DIRS := include src
