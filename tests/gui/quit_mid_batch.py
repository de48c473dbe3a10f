"""Run by test_quitting.py in a fresh process: the app's real run path
(``gui.app.run``) over a folder batch, quit mid-batch with "Quit" pressed, and
then the interpreter's own exit, where "Fatal Python error" used to strike.

Usage: python quit_mid_batch.py DATA_DIR MODEL_DIR FOLDER
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PySide6.QtCore import QTimer

from eyescreen_desktop.gui import app as gui_app
from eyescreen_desktop.gui.main_window import MainWindow


def main() -> int:
    data_dir, model_dir, folder = (Path(a) for a in sys.argv[1:4])
    shown = MainWindow.show

    def show_and_batch(window: MainWindow) -> None:
        shown(window)
        window.messages.dialogs = False

        def progress(_rid: int, done: int, _total: int, _what: str) -> None:
            if done >= 1 and window.quit_box is None and not window._finishing:
                window.close()                                   # the user quits mid-batch...
                QTimer.singleShot(50, lambda: window.quit_button.click())   # ...and presses Quit
                print("quit asked mid-batch", flush=True)

        window.engine.progress.connect(progress)
        window.engine.modelReady.connect(lambda _card: window.batch_panel.screen_folder(folder))

    MainWindow.show = show_and_batch
    args = argparse.Namespace(data_dir=data_dir, model=model_dir, smoke=False, verbose=False)
    status = gui_app.run(args)
    print(f"exit status {status}", flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
