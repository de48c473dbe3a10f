"""An eye card's state is kept, not read back from the words on screen (issue 20):
the window clears a card whose photograph was still being graded when its request
ended, whatever the card's text says by then."""

from __future__ import annotations

from eyescreen_desktop.core.records import Eye
from eyescreen_desktop.gui.result_view import EyeCard


def test_a_pending_card_is_known_by_its_state_not_its_label(qtbot):
    card = EyeCard(Eye.RIGHT)
    qtbot.addWidget(card)
    assert not card.pending
    card.set_pending()
    card.photo.setText("Wird bewertet…")          # the words may change (another language, a hint)
    assert card.pending
    card.set_missing(None, encounter_saved=True)   # a pending card is not emptied by a missing-eye update
    assert card.pending and card.photo.text() == "Wird bewertet…"
    card.clear()
    assert not card.pending


def test_the_window_clears_cards_left_pending_when_their_request_ends(qtbot, window):
    card = window.result_view.cards[Eye.LEFT]
    card.set_pending()
    card.photo.setText("something else")
    window._requests.add(41)
    window._request_done(41, False)
    assert not card.pending and "No photograph yet" in card.photo.text()


def test_a_photograph_is_redrawn_when_it_or_its_size_changes_and_only_then(qtbot, monkeypatch):
    """Scaling is paid once per photograph and size (not at every resize event that leaves
    the side as it was), yet a new photograph, or a new size, is always what is on show."""
    import numpy as np

    from eyescreen_desktop.gui import result_view

    drawn: list[int] = []
    real = result_view.to_pixmap
    monkeypatch.setattr(result_view, "to_pixmap",
                        lambda rgb, side, ratio: (drawn.append(side), real(rgb, side, ratio))[1])
    label = result_view.PhotoLabel()
    qtbot.addWidget(label)
    label.resize(300, 300)
    label.show()
    dark, bright = np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 255, np.uint8)
    label.set_rgb(dark)
    label._render()                                   # the same photograph at the same size: not scaled again
    assert drawn == [300] and label.pixmap().toImage().pixelColor(150, 150).lightness() == 0
    label.set_rgb(bright)                             # another photograph, same size: redrawn
    assert drawn == [300, 300] and label.pixmap().toImage().pixelColor(150, 150).lightness() == 255
    label.resize(200, 240)                            # smaller: redrawn at the new side
    assert drawn == [300, 300, 200] and label.pixmap().width() == 200
    label.resize(240, 200)                            # another shape, the same side: not scaled again
    assert drawn == [300, 300, 200]
    label.set_message("Grading…")
    label.set_rgb(bright)                             # back from a message: drawn again
    assert drawn == [300, 300, 200, 200] and not label.pixmap().isNull()


def test_a_label_is_restyled_only_when_its_queue_changes(qtbot, monkeypatch):
    from PySide6.QtWidgets import QLabel

    from eyescreen_desktop.core.records import Queue
    from eyescreen_desktop.gui.result_view import _set_queue_property

    label = QLabel()
    qtbot.addWidget(label)
    polished: list[str] = []
    style = label.style()
    monkeypatch.setattr(style, "polish", lambda widget: polished.append(widget.property("queue")))
    _set_queue_property(label, Queue.URGENT)
    _set_queue_property(label, Queue.URGENT)          # the same queue: nothing to restyle
    _set_queue_property(label, None)
    assert polished == ["urgent", "none"] and label.property("queue") == "none"
