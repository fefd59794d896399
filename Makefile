# netcheck: every target sets up what it needs itself (.venv, Debian packages for the lab).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Debian packages the lab and the probes use (binaries checked, packages installed if missing).
LAB_DEBS := iproute2 nftables iptables iputils-ping ethtool tcpdump dnsutils util-linux procps nmap prometheus fping tshark nginx curl dnsmasq-base docker.io busybox-static tinyproxy

.PHONY: all venv deps test lint demo bench campaign clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

deps:
	@$(PYTHON) tools/ensure_debs.py $(LAB_DEBS)

lint: venv
	$(VENV)/bin/ruff check netcheck checks tests tools $(wildcard bench)
	$(PY) -m mypy

# The suite runs in TEST_JOBS processes, a file each at a time (most lab tests wait on the
# network, not the CPU); TEST_JOBS=0 runs it in this one process.
TEST_JOBS ?= 3

test: venv deps lint
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_JOBS) --dist loadfile tests

demo: venv deps
	$(PY) tools/demo.py $(SCENARIO)

# Fault campaign: generated networks, one fault each, graded (docs/campaigns.md). Without N,
# the fixed seed set (every catalogue entry once); `make campaign N=300 SEED=1` runs more.
campaign: venv deps
	$(PY) -m netcheck lab campaign --seed $(or $(SEED),1) $(if $(N),-n $(N)) $(if $(JOBS),--jobs $(JOBS))

# Bytecode compiled first, as `pip install` leaves it: start-up is measured as users get it.
bench: venv deps
	$(PY) -m compileall -q netcheck checks
	$(PY) bench/run.py
	$(PY) bench/batch_bench.py
	$(PY) bench/pcap_bench.py
	$(PY) bench/exporter_bench.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
