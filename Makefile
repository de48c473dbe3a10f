# Two commands do all the set-up on a fresh Debian/Ubuntu machine:
#   make run    - install everything and start the desktop app
#   make test   - install everything and run the test suite
# A clinic's desktop bundle: make bundle (dist/EyeScreen/), make bundle-test.
# Every Python package comes from uv.lock, hash-checked (docs/development.md):
#   make lock   - bring uv.lock in line with pyproject.toml (deliberately; never implicit)
#   make lock UPGRADE=opencv-python-headless   - also move one package to its newest allowed version
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?=
# uv itself, pinned by hash (packaging/tools/uv.txt); it never downloads an interpreter
TOOLS := .tools
UV := $(TOOLS)/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# every extra and the dev group: run time, tests, static checks, training and the bundle;
# compiled to bytecode once at install (as pip does, uv does not unless asked): else every
# fresh process compiles what it imports (1.5 s of CPU for the window's imports, each
# launch, where PYTHONDONTWRITEBYTECODE is set)
SYNC := $(UV) sync --locked --all-extras --compile-bytecode --python $(PY)

.PHONY: run test test-costs system-deps check venv lock bundle-size model bench screenshots clean bundle bundle-test bundle-tarball

$(UV): packaging/tools/uv.txt
	$(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --disable-pip-version-check --require-hashes -r packaging/tools/uv.txt
	touch $@

# installs exactly uv.lock (extraneous packages removed); refuses, saying so, when
# pyproject.toml has changed since the lock was made
$(STAMP): pyproject.toml uv.lock $(UV)
	$(MAKE) system-deps
	@$(SYNC) --quiet || { echo "make: uv.lock does not match pyproject.toml (or a locked file failed its hash):" \
	  "run 'make lock', then the suite and 'make bundle-test' (docs/development.md)" >&2; exit 1; }
	touch $(STAMP)

lock: $(UV)
	$(UV) lock --python $(PY) $(if $(UPGRADE),--upgrade-package $(UPGRADE))

venv: $(STAMP)

# Qt's xcb platform needs these on a bare Debian/Ubuntu (binutils and icu-devtools
# slim the Linux bundle: packaging/linux_slim.py); postgresql gives the
# tests their own throw-away PostgreSQL server (initdb, pg_ctl; never started as
# a service by the tests). Skipped when not root or when apt is missing (then
# install them by hand, see README). apt may be locked by another install: retried.
system-deps:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  for try in 1 2 3 4 5 6; do \
	    apt-get -o DPkg::Lock::Timeout=120 update -qq && break; sleep 10; done; \
	  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
	    postgresql libgl1 libegl1 libglib2.0-0 libfontconfig1 libxkbcommon0 libxkbcommon-x11-0 \
	    libdbus-1-3 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 \
	    libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0 libxrender1 \
	    libxi6 xvfb binutils icu-devtools >/dev/null; \
	else echo "system-deps: not root or no apt-get; skipping system libraries"; fi

run: $(STAMP)
	$(BIN)/eyescreen-desktop $(if $(DATA_DIR),--data-dir $(DATA_DIR))

# the static checks, the suite (both cores), then the frozen smoke test of the desktop bundle
# (whole files per worker, the costly ones first: tests/file_costs.py)
PYTEST_PARALLEL = -n 2 --dist loadfile --no-loadscope-reorder
# (the project's own modules are compiled first, for the suite's hundred fresh processes)
test: $(STAMP) check
	$(BIN)/python -m compileall -q eyescreen_desktop tests >/dev/null
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q $(PYTEST_PARALLEL) --durations=25
	$(MAKE) bundle-test

# refresh tests/file_costs.json (seconds per test file) from a full run; commit it
test-costs: $(STAMP)
	mkdir -p build
	$(BIN)/python -m compileall -q eyescreen_desktop tests >/dev/null
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q $(PYTEST_PARALLEL) --junitxml=build/junit.xml
	$(BIN)/python -m tests.file_costs build/junit.xml

# the layers (import-linter contracts), lint (ruff) and types (mypy: strict on domain, core
# checked), all configured in pyproject.toml; about 40 s from cold, a few seconds after
check: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check eyescreen_desktop tests scripts packaging
	$(BIN)/mypy

# the shipped grader (docs/training.md): 2.0.0 on four collections at 384 px (about 70-100 min
# on 2 cores), then the resolution fix at 512 px from it (about 15 min): grader 3.0.0. Then the
# gate on its features and the points behind it.
DATA4 := $(foreach c,fundus-dr eyepacs-256 odir-384 idrid,--data ../shared/datasets/$(c)/labels.csv)
model: $(STAMP)
	$(BIN)/eyescreen train $(DATA4) --out .cache/eyescreen-dr-2.0.0 --version 2.0.0 \
	  --checkpoints .cache/eyescreen-dr-2.0.0-checkpoints
	$(BIN)/eyescreen train $(DATA4) --recipe resfix-512 --start-from .cache/eyescreen-dr-2.0.0 \
	  --out models/eyescreen-dr --name eyescreen-dr --version 3.0.0 --checkpoints .cache/eyescreen-dr-3.0.0-checkpoints
	$(BIN)/eyescreen train-gate --grader models/eyescreen-dr --out models/eyescreen-gate
	$(BIN)/python -m eyescreen_desktop.training.worst_camera --write-card
	$(BIN)/python -m eyescreen_desktop.training.grader_outputs --write-cards

bench: $(STAMP)
	$(BIN)/eyescreen bench --json docs/bench.json

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python scripts/screenshots.py docs/

# ---- the desktop bundle a clinic installs (packaging/README.md); `make test` runs bundle-test
BUNDLE := dist/EyeScreen
BUNDLE_STAMP := $(VENV)/.bundle-installed
BUNDLE_INPUTS := pyproject.toml $(shell find eyescreen_desktop resources models packaging -type f \
  -not -name '*.pyc' -not -path 'packaging/README.md' -not -name 'smoke_test.py' -not -name 'make_icons.py' 2>/dev/null)
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

$(BUNDLE_STAMP): $(STAMP)
	touch $@

# a fixed hash seed and the commit's time, so two builds of one commit give the same files
# (docs/bundle-size.json lists the few that differ, and why)
$(BUNDLE)/eyescreen: $(BUNDLE_STAMP) $(BUNDLE_INPUTS)
	PYTHONHASHSEED=0 SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 0) $(BIN)/pyinstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller \
	  packaging/eyescreen.spec
	cp packaging/linux/eyescreen.desktop packaging/linux/install-desktop-entry.sh resources/icons/app.svg $(BUNDLE)/
	touch $@

bundle: $(BUNDLE)/eyescreen

# the bundled programs screen real and broken photographs and open the window
# (Xvfb) with nothing but the bundle: env -i PATH=/usr/bin:/bin
bundle-test: bundle
	$(BIN)/python packaging/bundle_report.py sizes $(BUNDLE) --previous docs/bundle-size.json
	$(BIN)/python packaging/smoke_test.py $(BUNDLE)

# record the bundle's size by component (commit it with the lock change that moved it)
bundle-size: bundle
	$(BIN)/python packaging/bundle_report.py sizes $(BUNDLE) --write docs/bundle-size.json

bundle-tarball: bundle
	tar -C dist -czf dist/EyeScreen-$(VERSION)-linux-$$(uname -m).tar.gz EyeScreen
	@ls -l dist/EyeScreen-$(VERSION)-linux-*.tar.gz

clean:
	rm -rf $(VENV) $(TOOLS) build dist *.egg-info
