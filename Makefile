# camnode: `make run` to try it, `make test` to check it, `make bench` to measure it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Debian packages the tests use, installed when missing (root or sudo).
TEST_DEBS ?= mosquitto openssl systemd chromium fonts-dejavu-core
# Test workers (pytest-xdist): one per core, at most 4; TEST_JOBS=0 runs in one process.
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

.PHONY: run test bench fuzz model check-config clean

$(PY):
	@$(PYTHON) -m venv $(VENV) || { sh deploy/ensure-debs.sh python3-venv && $(PYTHON) -m venv $(VENV); }

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install -q -e '.[bench]'
	@touch $@

run: $(VENV)/.installed
	@sh deploy/ensure-debs.sh mosquitto || echo "camnode: no mosquitto; running without a private MQTT broker"
	$(VENV)/bin/camnode run $(ARGS)

check-config: $(VENV)/.installed
	$(VENV)/bin/camnode check-config $(or $(CONFIG),config.json)

# The suite runs on TEST_JOBS workers, then the tests marked `solo` alone (exit code 5:
# none selected, as with PYTEST_ARGS naming other tests).
test: $(VENV)/.installed-test
	@sh deploy/ensure-debs.sh $(TEST_DEBS)
	$(PY) -m pytest -n $(TEST_JOBS) -m "not solo" $(PYTEST_ARGS)
	$(PY) -m pytest -m solo $(PYTEST_ARGS) || [ $$? -eq 5 ]

bench: $(VENV)/.installed-bench
	$(PY) -m bench.run $(ARGS)
	$(PY) -m bench.processors
	$(PY) -m bench.budget $(BUDGET_ARGS)
	$(PY) -m bench.detect_eval $(DETECT_ARGS)
	$(PY) -m bench.detect_node
	$(PY) -m bench.mqtt_rtt

# Long property-based fuzz run (10,000+ requests over MQTT and REST; `make test` runs a
# short one). FUZZ_ARGS="--cases 500" for a shorter run.
fuzz: $(VENV)/.installed-test
	@sh deploy/ensure-debs.sh mosquitto
	$(PY) -m tests.fuzz.run $(FUZZ_ARGS)

# The objects detector's model (~70 MB, pinned sha256) into models/ beside config.json.
model: $(VENV)/.installed
	$(VENV)/bin/camnode fetch-model

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
