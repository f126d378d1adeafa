# Quick start: `make report` (pipeline on the embedded synthetic default, or NUSC_ROOT=... for real nuScenes)
# and `make test`. Both create or update .venv by themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MAMBA_STAMP := $(VENV)/.installed-mamba-ssm-cpu
BOXMOT_STAMP := $(VENV)/.installed-boxmot
# BoxMOT (AGPL-3.0) baselines in the tracking comparison and its tests; `make report BOXMOT=0` leaves it out.
BOXMOT ?= 1
EXTRA_STAMPS := $(if $(filter 1,$(BOXMOT)),$(BOXMOT_STAMP))
PROFILE ?= configs/report_demo.yaml

.PHONY: venv test report bench clean-report

venv: $(STAMP)
	@# a checkout moved or copied to another folder: its editable install still points to the old folder
	@if [ "$$(cat $(VENV)/.location 2>/dev/null)" != "$(CURDIR)" ]; then \
		echo "installing trackssm_lib for $(CURDIR) (editable install of another folder)"; \
		$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e . && \
		echo "$(CURDIR)" > $(VENV)/.location; fi

# torch first (the CPU wheel; an unpinned torch would pull GBs of CUDA packages), then the package with the
# pinned, mutually compatible versions of constraints.txt so that no later install can move numpy.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
	$(PY) -m pip check
	@echo "$(CURDIR)" > $(VENV)/.location
	@touch $(STAMP)

# For the tests only: mamba-ssm's own Mamba module, installed without its CUDA kernels, is the reference for the
# parity test of the pure-PyTorch backend (on CPU it runs through mamba-ssm's reference selective scan).
# On a CUDA machine install the real kernels instead: `.venv/bin/pip install -c constraints.txt mamba-ssm==2.3.1`.
$(MAMBA_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt setuptools wheel packaging
	MAMBA_FORCE_BUILD=TRUE MAMBA_SKIP_CUDA_BUILD=TRUE $(PY) -m pip install --quiet --disable-pip-version-check \
		--no-build-isolation -c constraints.txt mamba-ssm==2.3.1 einops ninja
	$(PY) -m pip check
	@touch $(MAMBA_STAMP)

# The optional BoxMOT baselines (boxmot 19.0.0 and torchvision, pinned in constraints.txt).
$(BOXMOT_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[boxmot]"
	$(PY) -m pip check
	@touch $(BOXMOT_STAMP)

test: venv $(MAMBA_STAMP) $(EXTRA_STAMPS)
	$(PY) -m pytest -q

report: venv $(EXTRA_STAMPS)
	$(PY) -m trackssm_lib report --profile $(PROFILE) \
		$(if $(NUSC_ROOT),--dataroot $(NUSC_ROOT)) $(if $(NUSC_VERSION),--version $(NUSC_VERSION))

bench: venv
	$(PY) bench/prep_speed.py

clean-report:
	rm -rf book/_build book/chapters outputs
