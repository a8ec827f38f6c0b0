# The two commands of the README. Both create .venv when it is missing; the venv sees the system's
# site-packages so that a vendor-installed torch (and torch_npu) is reused instead of replaced.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.portproof-installed

.PHONY: demo test setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml tools/setup_env.py src/portproof/torch_pairing.py
	test -x $(PY) || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# An installed torch (and torch_npu) is held at its version and gets the torchvision built for it;
	# torch is installed only when none is.
	$(PY) tools/setup_env.py
	touch $(STAMP)

# A FAIL verdict is a valid outcome of a demo; only "could not run" (exit 2) fails make.
demo: $(STAMP)
	$(VENV)/bin/portproof check || test $$? -eq 1

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) logs
