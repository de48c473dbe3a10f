"""The PySide6 desktop window: small widgets composed by the main window."""
