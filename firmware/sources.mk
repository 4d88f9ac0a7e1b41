# SPDX-License-Identifier: MIT
# The firmware's source lists: the one place every build takes them from (firmware/Makefile
# and posix.mk, runtime_c/Makefile's Cortex-M4 tests and bench/device_cost/Makefile for the
# QEMU board port, and pysg/_build_device.py, which parses this file like
# runtime_c/sources.mk). Paths are relative to firmware/. Keep the format plain:
# `NAME := words`, one assignment per line (a trailing backslash continues it).

# The application, one file per role (app/sg_app_priv.h says what each owns), the framing
# and the slots.
SG_FW_APP_SRCS := app/sg_app.c app/sg_app_model.c app/sg_app_fw.c app/sg_app_stream.c \
                  app/sg_proto.c app/sg_slots.c
# Boot control: the application confirms images and requests upgrades through it.
SG_FW_BOOTCTL_SRCS := boot/sg_bootctl.c
# The bootloader's own code (it links the boot control and the runtime's CRC too).
SG_FW_BOOT_SRCS := boot/sg_boot.c
# Headers every firmware build depends on, and the folders it passes with -I.
SG_FW_HDRS := include/sg_board.h include/sg_bootctl.h include/sg_image.h include/sg_proto_ops.h \
              app/sg_app.h app/sg_app_priv.h app/sg_proto.h app/sg_slots.h boot/sg_bootctl_priv.h \
              boards/sg_cortexm.h boards/sg_rx_ring.h
SG_FW_INC_DIRS := include app boot

# The POSIX device: the board, and the executable's main() (the cffi extension
# pysg._sg_device calls sg_posix_main itself).
SG_FW_POSIX_SRCS := boards/posix/sg_board_posix.c boards/posix/sg_posix_main.c
SG_FW_POSIX_MAIN := boards/posix/sg_posix_device.c
SG_FW_POSIX_HDRS := boards/posix/sg_posix.h boards/posix/sg_posix_internal.h
SG_FW_POSIX_INC_DIRS := boards/posix

# The one QEMU mps2-an386 (Cortex-M4F) port: vector table and reset, the memory map
# (linker scripts), and the firmware's board driver. The runtime's C tests
# (-DSG_MPS2_NEWLIB_CRT0, semihost.ld) and the device-cost driver (semihost.ld) link
# its start-up file too.
SG_FW_MPS2_DIR := boards/qemu-mps2-an386
SG_FW_MPS2_STARTUP := boards/qemu-mps2-an386/startup.c
SG_FW_MPS2_BOARD_SRCS := boards/qemu-mps2-an386/sg_board_mps2.c
SG_FW_MPS2_APP_MAIN := boards/qemu-mps2-an386/sg_main.c
SG_FW_MPS2_DEPS := boards/qemu-mps2-an386/sg_board_mps2.h boards/qemu-mps2-an386/mps2_an386.ld \
                   boards/qemu-mps2-an386/boot.ld boards/qemu-mps2-an386/app.ld \
                   boards/qemu-mps2-an386/semihost.ld boards/sg_cortexm.h

# STM32F407 Discovery: start-up, board driver, the application's main(), linker scripts.
SG_FW_STM32_DIR := boards/stm32f4
SG_FW_STM32_SRCS := boards/stm32f4/startup.c boards/stm32f4/sg_board_stm32f4.c
SG_FW_STM32_APP_MAIN := boards/stm32f4/sg_main.c
SG_FW_STM32_DEPS := boards/stm32f4/common.ld boards/stm32f4/boot.ld boards/stm32f4/app.ld boards/sg_cortexm.h
