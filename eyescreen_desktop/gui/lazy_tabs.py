"""Tabs that are built the first time they are needed.

The window must be on screen within a second. Most of its tabs (grading, quality
assurance) are not what a nurse sees first, yet building them imports their
modules and creates, styles and lays out their widgets before the first paint.
:class:`LazyTabs` puts an empty page in their place and builds the real widget
when the tab is first shown (or when code asks for it, e.g. a test or Help),
then swaps it into the same place: same title, icon, tip, position and enabled
state, so nothing visible changes.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QTabWidget, QWidget


class LazyTabs(QObject):
    """The pages of ``tabs``, some built on first show. ``shown(widget)`` fires each
    time the current tab changes, always with the real (built) widget."""

    shown = Signal(QWidget)

    def __init__(self, tabs: QTabWidget) -> None:
        super().__init__(tabs)
        self.tabs = tabs
        self._factories: dict[str, Callable[[], QWidget]] = {}
        self._pages: dict[str, QWidget] = {}       # what the tab holds now: placeholder or built
        self._built: dict[str, QWidget] = {}
        tabs.currentChanged.connect(self._current_changed)

    def add(self, key: str, widget: QWidget | None, icon: QIcon, title: str,
            build: Callable[[], QWidget] | None = None) -> None:
        """Add the tab ``key``: ``widget`` now, or ``build()`` on first show (an empty page until then)."""
        if widget is None:
            if build is None:
                raise ValueError(f"tab {key!r} needs a widget or a build function")
            widget = QWidget()
            widget.setObjectName(f"lazyTab_{key}")
            self._factories[key] = build
        else:
            self._built[key] = widget
        self._pages[key] = widget
        self.tabs.addTab(widget, icon, title)

    def page(self, key: str) -> QWidget | None:
        """The widget the tab ``key`` holds now (its placeholder until built); None when absent.
        For tab-level state (enabled, current) without building the tab."""
        return self._pages.get(key)

    def built(self, key: str) -> QWidget | None:
        """The tab's real widget if it has been built, else None (never builds it)."""
        return self._built.get(key)

    def widget(self, key: str) -> QWidget:
        """The tab's real widget, built now if it was not yet."""
        if key not in self._built:
            self._build(key)
        return self._built[key]

    def show(self, key: str) -> None:
        """Make the tab ``key`` the current one (built first)."""
        self.tabs.setCurrentWidget(self.widget(key))

    def _build(self, key: str) -> None:
        placeholder = self._pages[key]
        widget = self._factories.pop(key)()
        index = self.tabs.indexOf(placeholder)
        enabled, current = self.tabs.isTabEnabled(index), self.tabs.currentIndex() == index
        icon, title, tip = self.tabs.tabIcon(index), self.tabs.tabText(index), self.tabs.tabToolTip(index)
        blocked = self.tabs.blockSignals(True)   # the swap is not a change of tab
        try:
            self.tabs.insertTab(index, widget, icon, title)
            self.tabs.setTabToolTip(index, tip)
            self.tabs.setTabEnabled(index, enabled)
            self.tabs.removeTab(index + 1)
            if current:
                self.tabs.setCurrentIndex(index)
        finally:
            self.tabs.blockSignals(blocked)
        placeholder.deleteLater()
        self._pages[key] = self._built[key] = widget

    def _current_changed(self, index: int) -> None:
        page = self.tabs.widget(index)
        key = next((k for k, w in self._pages.items() if w is page), None)
        if key is None:
            return
        if key not in self._built:
            self._build(key)
        self.shown.emit(self._built[key])
