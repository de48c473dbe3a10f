"""The desktop app's preferences: typed, with defaults, declared in one place.

Every preference the window offers (camera, protocol, operating point, what
the referral slip prints, the data folder) is one :class:`Setting` line below,
so a reader sees all of them, their types and defaults at a glance (Picard's
``options.py`` does the same). Values live in ``QSettings``: the user's
platform settings normally, or ``settings.ini`` inside ``--data-dir`` so tests
and demos never touch a real clinic's preferences.

Window geometry is kept apart (:class:`WindowState`, its own file): resetting
the preferences must not move the window, and a broken geometry must not cost
the clinic its slip header.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QByteArray, QSettings

from ..core.paths import APP_NAME
from ..core.protocol import DEFAULT_PROTOCOL, PROTOCOLS

log = logging.getLogger(__name__)

T = TypeVar("T")

PAGE_SIZES = ("A4", "Letter")


class Setting(Generic[T]):
    """One typed preference: its key in QSettings, default and meaning.

    Used as a class attribute of :class:`Settings`; reading gives a value of
    the default's type (a stored value that cannot be converted falls back to
    the default, logged), writing stores it at once."""

    def __init__(self, key: str, default: T, doc: str, choices: tuple[T, ...] = ()):
        self.key, self.default, self.doc, self.choices = key, default, doc, choices
        self.name = key

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: "Settings | None", owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.read(self)

    def __set__(self, obj: "Settings", value: T) -> None:
        obj.write(self, value)


class Settings:
    """The clinic's preferences. Pass one instance to whoever needs it."""

    camera_source = Setting("capture/source", "",
                            "camera index 0-3, a video file or a stream URL ('' = none chosen yet)")
    protocol = Setting("screening/protocol", DEFAULT_PROTOCOL, "screening protocol for new encounters",
                       tuple(PROTOCOLS))
    operating_point = Setting("screening/operating_point", "",
                              "operating point name from the model card ('' = the card's default)")
    site_operating_point = Setting("screening/site_operating_point", "",
                                   "this clinic's operating point file from a calibration on its own graded "
                                   "photographs ('' = use the model card's operating point above)")
    model_folder = Setting("screening/model_folder", "", "model folder ('' = the model shipped with EyeScreen)")
    clinic_name = Setting("slip/clinic_name", "", "clinic name printed at the top of referral slips")
    clinic_address = Setting("slip/clinic_address", "", "clinic address printed under the name")
    clinic_logo = Setting("slip/clinic_logo", "", "logo image printed on slips ('' = the default logo)")
    page_size = Setting("slip/page_size", "A4", "paper size of referral slips", PAGE_SIZES)
    data_folder = Setting("storage/data_folder", "",
                          "clinic database and image store ('' = the platform's user data folder)")
    database_url = Setting("storage/database_url", "",
                           "clinic database shared by several workstations, e.g. postgresql://eyescreen@server/clinic "
                           "('' = this computer's own SQLite file in the data folder)")
    idle_lock_minutes = Setting("access/idle_lock_minutes", 10,
                                "minutes without a key or click before the window locks and hides every "
                                "patient (0 = never; only on a database with accounts)")
    offer_first_admin = Setting("access/offer_first_admin", True,
                                "offer to create a first admin at start ('Not now' stops offering)")
    image_store = Setting("storage/image_store", "",
                          "the clinic's shared image folder ('' = images/ in the data folder)")
    show_heatmap = Setting("view/show_heatmap", False, "overlay the heat map on graded photographs")
    last_folder = Setting("files/last_folder", "",
                          "where the last photographs were opened from: the open dialog starts there")
    qa_percent = Setting("grading/qa_percent", 10, "share of annual encounters drawn for a quality-assurance "
                                                   "grade, in percent (0 = none); every draw is recorded")
    single_grader_stands = Setting("grading/single_grader_stands", False,
                                   "a single grader's decision stands instead of going to arbitration (a single "
                                   "grader never downgrades an AI urgent referral alone)")
    site_name = Setting("grading/site_name", "", "site name in the agreement report ('' = the clinic name)")

    def __init__(self, store: QSettings):
        self.qsettings = store

    @classmethod
    def options(cls) -> dict[str, Setting[Any]]:
        """Every declared setting by attribute name, in declaration order."""
        return {k: v for k, v in vars(cls).items() if isinstance(v, Setting)}

    def read(self, setting: Setting[T]) -> T:
        """The stored value converted to the default's type, else the default."""
        raw = self.qsettings.value(setting.key, None)
        if raw is None:
            return setting.default
        try:
            value = _convert(raw, type(setting.default))
        except (TypeError, ValueError):
            log.warning("setting %s has an unusable value %r; using %r", setting.key, raw, setting.default)
            return setting.default
        if setting.choices and value not in setting.choices:
            log.warning("setting %s=%r is not one of %s; using %r", setting.key, value, setting.choices,
                        setting.default)
            return setting.default
        return value

    def write(self, setting: Setting[T], value: T) -> None:
        """Store a value (checked against the setting's type and choices)."""
        value = _convert(value, type(setting.default))
        if setting.choices and value not in setting.choices:
            raise ValueError(f"{setting.name} must be one of {', '.join(map(str, setting.choices))}")
        self.qsettings.setValue(setting.key, value)

    def reset(self) -> None:
        """Forget every preference (window geometry is kept: it lives elsewhere)."""
        for setting in self.options().values():
            self.qsettings.remove(setting.key)

    def sync(self) -> None:
        """Write pending changes to disk now."""
        self.qsettings.sync()

    def chosen_operating_point(self, card: Any = None) -> Any:
        """What desk screening, folder batches and the hot folder screen with: the clinic's
        calibrated point when one is set (an OperatingPoint; raises CalibrationError when it
        was calibrated for other weights than ``card``'s, or the file is unusable), else the
        model card's point by name (None = the card's default). Without ``card`` (model not
        loaded yet) the card of the configured model folder is read for the check."""
        if not self.site_operating_point:
            return self.operating_point or None
        from ..core.calibration import load_operating_point
        from ..core.classifier import read_card
        from ..core.paths import default_model_dir

        card = card or read_card(Path(self.model_folder) if self.model_folder else default_model_dir())
        return load_operating_point(Path(self.site_operating_point), card).operating_point

    def slip_settings(self) -> Any:
        """The reports module's ``SlipSettings`` built from these preferences (only
        the fields it declares are passed), or None before that module exists."""
        try:
            from ..core.reports import SlipSettings
        except ImportError:
            return None
        values = {"clinic_name": self.clinic_name, "clinic_address": self.clinic_address,
                  "address": self.clinic_address, "name": self.clinic_name,
                  "page_size": self.page_size,
                  "logo": _path_or_none(self.clinic_logo), "logo_path": _path_or_none(self.clinic_logo),
                  "clinic_logo": _path_or_none(self.clinic_logo)}
        if dataclasses.is_dataclass(SlipSettings):
            names = {f.name for f in dataclasses.fields(SlipSettings)}
            kwargs = {k: v for k, v in values.items() if k in names and v not in (None, "")}
            return SlipSettings(**kwargs)
        return SlipSettings()


def _path_or_none(text: str) -> Path | None:
    return Path(text) if text else None


def _convert(value: Any, kind: type) -> Any:
    """QSettings hands back strings from INI files: turn them into ``kind``."""
    if kind is bool:
        if isinstance(value, str):
            if value.lower() in ("true", "1", "yes"):
                return True
            if value.lower() in ("false", "0", "no", ""):
                return False
            raise ValueError(value)
        return bool(value)
    if kind is int:
        return int(value)
    return kind(value)


class WindowState:
    """Where the window was and how big: kept apart from the preferences."""

    def __init__(self, store: QSettings):
        self.qsettings = store

    def geometry(self) -> QByteArray | None:
        """Saved ``QWidget.saveGeometry()`` bytes, or None on first start."""
        value = self.qsettings.value("window/geometry")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def save_geometry(self, data: QByteArray) -> None:
        self.qsettings.setValue("window/geometry", data)
        self.qsettings.sync()

    def splitter(self) -> QByteArray | None:
        value = self.qsettings.value("window/splitter")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def save_splitter(self, data: QByteArray) -> None:
        self.qsettings.setValue("window/splitter", data)


def open_settings(data_dir: Path | None) -> tuple[Settings, WindowState]:
    """Preferences and window state: inside ``data_dir`` when one was given
    (``--data-dir``: tests, demos, a portable install), else the user's own."""
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        prefs = QSettings(str(data_dir / "settings.ini"), QSettings.Format.IniFormat)
        window = QSettings(str(data_dir / "window.ini"), QSettings.Format.IniFormat)
    else:
        prefs = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, APP_NAME, "settings")
        window = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, APP_NAME, "window")
    return Settings(prefs), WindowState(window)
