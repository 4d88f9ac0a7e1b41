# SPDX-License-Identifier: MIT
PYTHON ?= python3

.PHONY: test test-fast demo bench clean

# Every test: the suite CI runs.
test:
	$(PYTHON) -m pytest -q tests

# Skip the slow end-to-end tests while iterating.
test-fast:
	$(PYTHON) -m pytest -q -m "not slow" tests

demo:
	pysg demo

bench:
	$(PYTHON) -m bench.train_memory
	$(PYTHON) -m bench.gesture_recipe

clean:
	rm -rf build dist *.egg-info .pytest_cache

# ---------------------------------------------------------------- C runtime (runtime_c/)
# `make test` already runs the C tests through tests/test_runtime_c_unit.py.
.PHONY: runtime-c runtime-c-test runtime-c-asan runtime-c-aarch64 runtime-c-cortexm4 runtime-c-cortexm4-test runtime-c-size \
        runtime-c-check-nomalloc runtime-c-fuzz-short runtime-c-fuzz-long clean-runtime-c

runtime-c:
	$(MAKE) -C runtime_c host
runtime-c-test:
	$(MAKE) -C runtime_c test-host PYTHON=$(PYTHON)
runtime-c-asan:
	$(MAKE) -C runtime_c test-asan PYTHON=$(PYTHON)
runtime-c-aarch64:
	$(MAKE) -C runtime_c test-aarch64 PYTHON=$(PYTHON)
runtime-c-cortexm4:
	$(MAKE) -C runtime_c cortexm4
runtime-c-cortexm4-test:
	$(MAKE) -C runtime_c test-cortexm4 PYTHON=$(PYTHON)
runtime-c-size:
	$(MAKE) -C runtime_c size
runtime-c-check-nomalloc:
	$(MAKE) -C runtime_c cortexm4 aarch64 check-nomalloc
runtime-c-fuzz-short:
	$(MAKE) -C runtime_c fuzz-short PYTHON=$(PYTHON)
runtime-c-fuzz-long:
	$(MAKE) -C runtime_c fuzz-long PYTHON=$(PYTHON)
clean-runtime-c:
	$(MAKE) -C runtime_c clean
