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
