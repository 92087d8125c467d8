# The README's two commands: `make run` and `make test`. Both set everything up first
# (Debian packages as root, a virtualenv with the Python ones) and are quiet when it is done.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ROCKS := $(VENV)/bin/rocks
STAMP := $(VENV)/.installed
# make run keeps its demo state inside the checkout; a real site sets PROVISIONER_HOME itself.
RUN_HOME ?= $(CURDIR)/var
# Bytecode is what makes `rocks` start fast; some environments switch writing it off.
export PYTHONDONTWRITEBYTECODE :=

.PHONY: run test setup system-run system-test system-bench lint bench clean

run: system-run $(STAMP)
	@PROVISIONER_HOME=$(RUN_HOME) $(PY) -m provisioner.demo

# One test process per core: the suite waits on subprocesses, databases and booting VMs.
test: system-test $(STAMP)
	@$(VENV)/bin/pytest -q -n auto

setup: system-run $(STAMP)

system-run:
	@PYTHON=$(PYTHON) scripts/system-deps.sh run

system-test:
	@PYTHON=$(PYTHON) scripts/system-deps.sh test

system-bench:
	@PYTHON=$(PYTHON) scripts/system-deps.sh bench

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	@echo "installing Python packages into $(VENV) (libvirt-python compiles, about a minute)"
	@$(PY) -m pip install -e '.[dev]' > $(VENV)/pip.log 2>&1 || { tail -40 $(VENV)/pip.log; exit 1; }
	@$(PY) -c "import provisioner, sqlalchemy, libvirt, flask, tftpy, dnslib, lxml, pluggy"
	@$(PY) -m compileall -q provisioner >/dev/null
	@touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check provisioner tests bench
	$(VENV)/bin/ruff format --check provisioner tests bench

# Every benchmark, each beside its peer (docs/benchmarks.md); about 25 minutes. A missed target
# is reported in the summary at the end and does not stop the rest.
bench: system-bench $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) var build *.egg-info
