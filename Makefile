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
	$(PYTHON) bench/train_memory.py
	$(PYTHON) bench/gesture_recipe.py

clean:
	rm -rf build dist *.egg-info .pytest_cache
