"""Screening metrics: kept in :mod:`eyescreen_desktop.core.metrics` (numpy only), so that
site calibration in the product can use them without importing training code;
this module re-exports them for the training and evaluation scripts."""

from ..core.metrics import *  # noqa: F401,F403 - re-exported for the training and evaluation scripts
from ..core.metrics import QUEUE_ORDER, RateCI, _rate  # noqa: F401 - re-exported for the training and evaluation scripts
