# Two commands do all the set-up on a fresh Debian/Ubuntu machine:
#   make run    - install everything and start the desktop app
#   make test   - install everything and run the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?=

.PHONY: run test system-deps venv model bench screenshots clean

$(STAMP): pyproject.toml
	$(MAKE) system-deps
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Qt's xcb platform needs these on a bare Debian/Ubuntu; skipped when not root
# or when apt is missing (then install them by hand, see README).
system-deps:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    libgl1 libegl1 libglib2.0-0 libfontconfig1 libxkbcommon0 libxkbcommon-x11-0 \
	    libdbus-1-3 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 \
	    libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0 libxrender1 \
	    libxi6 >/dev/null; \
	else echo "system-deps: not root or no apt-get; skipping system libraries"; fi

run: $(STAMP)
	$(BIN)/eyescreen-desktop $(if $(DATA_DIR),--data-dir $(DATA_DIR))

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

model: $(STAMP)
	$(BIN)/eyescreen train --data ../shared/datasets/fundus-dr/labels.csv \
	  --data ../shared/datasets/eyepacs-256/labels.csv --out models/eyescreen-dr --thresholds-on fundus-dr

bench: $(STAMP)
	$(BIN)/eyescreen bench --json docs/bench.json

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python scripts/screenshots.py docs/

clean:
	rm -rf $(VENV) build *.egg-info
