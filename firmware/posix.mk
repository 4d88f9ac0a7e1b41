# SPDX-License-Identifier: MIT
# The POSIX emulated device, its C unit tests and the protocol fuzzer. Included by
# firmware/Makefile; also usable alone: `make -f posix.mk posix` from firmware/.
#   make posix        build/posix/sg_posix_device (--flash FILE (--tcp PORT | --pty))
#   make asan         the same under ASan + UBSan: build/posix/asan/sg_posix_device
#   make test-posix   C unit tests (COBS vectors, frame errors, op handlers on a RAM flash)
#   make fuzz-proto   libFuzzer on the frame receiver + op handlers (FUZZ_SECONDS, default 30)
# The end-to-end tests run any build: PYSG_POSIX_DEVICE=firmware/build/posix/asan/sg_posix_device
#   python -m pytest tests/test_device_posix.py
include ../runtime_c/sources.mk
include sources.mk
POSIX_PYTHON ?= $(if $(PYTHON),$(PYTHON),python3)
POSIX_B ?= build/posix
POSIX_CC ?= gcc
POSIX_CLANG ?= clang
FUZZ_SECONDS ?= 30

POSIX_WARN := -std=c99 -Wall -Wextra -Werror -pedantic
POSIX_INC := $(addprefix -I,$(SG_FW_INC_DIRS) $(SG_FW_POSIX_INC_DIRS)) $(addprefix -I../runtime_c/,$(SG_INC_DIRS))
POSIX_CORE_SRCS := $(addprefix ../runtime_c/,$(SG_DEVICE_SRCS)) $(SG_FW_APP_SRCS) $(SG_FW_BOOTCTL_SRCS)
POSIX_BOARD_SRCS := $(SG_FW_POSIX_SRCS) $(SG_FW_POSIX_MAIN)
POSIX_HDRS := $(SG_FW_HDRS) $(SG_FW_POSIX_HDRS) $(addprefix ../runtime_c/,$(SG_HDRS)) sources.mk
POSIX_TEST_BOARD := tests/sg_test_board.c
POSIX_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

.PHONY: posix asan test-posix fuzz-proto clean-posix

posix: $(POSIX_B)/sg_posix_device
$(POSIX_B)/sg_posix_device: $(POSIX_CORE_SRCS) $(POSIX_BOARD_SRCS) $(POSIX_HDRS)
	@mkdir -p $(@D)
	$(POSIX_CC) $(POSIX_WARN) -O2 $(POSIX_INC) $(POSIX_CORE_SRCS) $(POSIX_BOARD_SRCS) -o $@

asan: $(POSIX_B)/asan/sg_posix_device
$(POSIX_B)/asan/sg_posix_device: $(POSIX_CORE_SRCS) $(POSIX_BOARD_SRCS) $(POSIX_HDRS)
	@mkdir -p $(@D)
	$(POSIX_CC) $(POSIX_WARN) -O1 -g $(POSIX_SAN) $(POSIX_INC) $(POSIX_CORE_SRCS) $(POSIX_BOARD_SRCS) -o $@

# The unit tests run under ASan + UBSan: they are small, and memory errors are what they hunt.
$(POSIX_B)/test_proto: tests/test_proto.c $(POSIX_TEST_BOARD) tests/sg_test_board.h $(POSIX_CORE_SRCS) $(POSIX_HDRS)
	@mkdir -p $(@D)
	$(POSIX_CC) $(POSIX_WARN) -O1 -g $(POSIX_SAN) $(POSIX_INC) -Itests tests/test_proto.c $(POSIX_TEST_BOARD) \
	  $(POSIX_CORE_SRCS) -o $@
test-posix: $(POSIX_B)/test_proto
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(POSIX_B)/test_proto

# The fuzzer starts every input from a flash holding a small model with every kind of stage.
$(POSIX_B)/fuzz_model.sgm: fuzz/make_fuzz_model.py
	@mkdir -p $(@D)
	cd .. && $(POSIX_PYTHON) firmware/fuzz/make_fuzz_model.py $(abspath $@) $(abspath $(POSIX_B))/fuzz-corpus
$(POSIX_B)/fuzz_proto: fuzz/fuzz_proto.c $(POSIX_TEST_BOARD) tests/sg_test_board.h $(POSIX_CORE_SRCS) $(POSIX_HDRS)
	@mkdir -p $(@D)
	$(POSIX_CLANG) -std=c99 -Wall -Wextra -Werror -O1 -g -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=all -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION $(POSIX_INC) -Itests \
	  fuzz/fuzz_proto.c $(POSIX_TEST_BOARD) $(POSIX_CORE_SRCS) -o $@
fuzz-proto: $(POSIX_B)/fuzz_proto $(POSIX_B)/fuzz_model.sgm
	SG_FUZZ_MODEL=$(POSIX_B)/fuzz_model.sgm $(POSIX_B)/fuzz_proto -max_total_time=$(FUZZ_SECONDS) \
	  -max_len=4096 -print_final_stats=1 $(POSIX_B)/fuzz-corpus

clean-posix:
	rm -rf $(POSIX_B)
