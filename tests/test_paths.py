"""Where EyeScreen reads and writes, on every platform: resources and models
from the data packages, clinic data in the platform's *local* data folder,
caches in its cache folder, and batches over inputs that share no folder."""

from __future__ import annotations

import importlib.resources
import ntpath
import os
from pathlib import Path

import pytest

from eyescreen_desktop.core import batch, batch_plan, paths
from eyescreen_desktop.core.reports import default_logo_path, register_fonts

from .conftest import FUNDUS_DR, ROOT


def test_resources_and_models_are_the_installed_data_packages():
    resources = Path(str(importlib.resources.files(paths.RESOURCES_PACKAGE)))
    assert paths.resources_dir() == resources
    assert paths.models_dir() == Path(str(importlib.resources.files(paths.MODELS_PACKAGE)))
    for parts in (("fonts", "DejaVuSans.ttf"), ("fonts", "DejaVuSans-Bold.ttf"), ("icons", "app.svg"),
                  ("report", "logo.png"), ("style.qss",)):
        assert paths.resource_file(*parts).is_file(), parts
    assert default_logo_path() == resources / "report" / "logo.png"
    assert register_fonts()  # reportlab opens the fonts through the same helper
    assert (paths.default_model_dir() / "model_card.json").is_file()


def test_a_checkout_without_install_uses_its_own_folders(monkeypatch):
    def not_installed(package):
        raise ModuleNotFoundError(package)

    monkeypatch.setattr(importlib.resources, "files", not_installed)
    assert paths.resources_dir() == ROOT / "resources"
    assert paths.default_model_dir() == ROOT / "models" / "eyescreen-dr"


def test_eyescreen_model_chooses_another_model(monkeypatch, tmp_path):
    monkeypatch.setenv("EYESCREEN_MODEL", str(tmp_path))
    assert paths.default_model_dir() == tmp_path


@pytest.fixture
def windows(monkeypatch, tmp_path):
    """This process seen as Windows with a roaming and a local profile folder."""
    monkeypatch.setattr(paths.sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "Local"))
    monkeypatch.delenv("EYESCREEN_DATA_DIR", raising=False)
    monkeypatch.delenv("EYESCREEN_CACHE_DIR", raising=False)
    return tmp_path


def test_windows_data_is_local_not_roaming(windows):
    assert paths.default_data_dir() == windows / "Local" / "EyeScreen"
    assert paths.default_cache_dir() == windows / "Local" / "EyeScreen" / "cache"
    assert "Roaming" not in paths.data_paths().database.parts


def test_windows_without_localappdata_uses_the_profile(windows, monkeypatch):
    monkeypatch.delenv("LOCALAPPDATA")
    assert paths.default_data_dir() == Path.home() / "AppData" / "Local" / "EyeScreen"


def test_macos_folders(monkeypatch):
    monkeypatch.setattr(paths.sys, "platform", "darwin")
    monkeypatch.delenv("EYESCREEN_DATA_DIR", raising=False)
    monkeypatch.delenv("EYESCREEN_CACHE_DIR", raising=False)
    assert paths.default_data_dir() == Path.home() / "Library" / "Application Support" / "EyeScreen"
    assert paths.default_cache_dir() == Path.home() / "Library" / "Caches" / "EyeScreen"


def test_linux_folders_follow_xdg(monkeypatch, tmp_path):
    monkeypatch.setattr(paths.sys, "platform", "linux")
    monkeypatch.delenv("EYESCREEN_DATA_DIR", raising=False)
    monkeypatch.delenv("EYESCREEN_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert paths.default_data_dir() == tmp_path / "share" / "EyeScreen"
    assert paths.default_cache_dir() == tmp_path / "cache" / "eyescreen"
    monkeypatch.setenv("XDG_CACHE_HOME", "")  # set but empty means unset (XDG spec)
    assert paths.default_cache_dir() == Path.home() / ".cache" / "eyescreen"
    monkeypatch.setenv("EYESCREEN_CACHE_DIR", str(tmp_path / "mine"))
    assert paths.default_cache_dir() == tmp_path / "mine"


def test_training_caches_live_in_the_platform_cache_folder(windows):
    from eyescreen_desktop.training import data, efficientnet_lite

    assert data.cache_dir() == efficientnet_lite.cache_dir() == paths.default_cache_dir()


def test_common_folder_of_inputs_on_different_drives_is_none(monkeypatch):
    assert paths.common_folder([Path("/clinic/day1"), Path("/clinic/day2/left")]) == Path("/clinic")
    monkeypatch.setattr(os.path, "commonpath", ntpath.commonpath)  # Windows' rules on this machine
    assert paths.common_folder([Path("C:/photos/day1"), Path("D:/camera")]) is None
    assert paths.common_folder([Path("C:/photos/day1"), Path("C:/photos/day2")]) == Path("C:\\photos")


def test_a_batch_over_folders_sharing_no_parent_names_files_by_their_own_folder(monkeypatch, tmp_path):
    import shutil

    left, right = tmp_path / "C" / "camera", tmp_path / "D" / "usb"
    for folder, name in ((left, "P001_L.jpg"), (right, "P001_R.jpg")):
        folder.mkdir(parents=True)
        shutil.copy(FUNDUS_DR / "images" / name, folder / name)
    monkeypatch.setattr(batch_plan, "common_folder", lambda folders: None)  # as on two Windows drives (plan_files looks it up there)
    planned = batch.plan_files(batch.resolve_inputs([left, right]))
    assert sorted(f.file for f in planned) == ["P001_L.jpg", "P001_R.jpg"]
    assert {f.patient_id for f in planned} == {"P001"}
