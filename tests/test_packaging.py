"""The desktop bundle's recipe (packaging/): what it leaves out must be what the
app never uses. The frozen bundle itself is tested by ``make bundle-test``
(packaging/smoke_test.py); these tests run without building it."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packaging"))
import linux_slim  # noqa: E402 - imported after the sys.path / environment set-up above


def _spec_list(name: str) -> list[str]:
    spec = (ROOT / "packaging" / "eyescreen.spec").read_text(encoding="utf-8")
    return ast.literal_eval(spec.split(f"{name} = ", 1)[1].split("]", 1)[0] + "]")


# ---------------------------------------------------------------------- excluded modules

APP_IMPORTS = r'''
import importlib, importlib.abc, json, pkgutil, sys

EXCLUDED = json.loads(sys.argv[1])


class LeftOut(importlib.abc.MetaPathFinder):
    """Imports as the bundle does: the spec's excludes are not there."""
    def find_spec(self, name, path=None, target=None):
        if any(name == x or name.startswith(x + ".") for x in EXCLUDED):
            raise ModuleNotFoundError(f"No module named {name!r} (left out of the bundle)", name=name)


sys.meta_path.insert(0, LeftOut())
import eyescreen_desktop
for m in pkgutil.walk_packages(eyescreen_desktop.__path__, "eyescreen_desktop."):
    if ".training" not in m.name and not m.name.endswith(("__main__", ".bench")):
        importlib.import_module(m.name)
import alembic.command, alembic.runtime.migration, alembic.ddl, psycopg, pydicom, pydicom.pixels
import sqlalchemy.dialects.postgresql.psycopg, sqlalchemy.dialects.sqlite.pysqlite, pypdfium2, onnxruntime, cv2
from PIL import Image
from PySide6 import QtCore, QtGui, QtWidgets, QtPrintSupport, QtSvg
print(" ".join(sys.modules))
'''


def test_the_app_imports_without_what_the_bundle_leaves_out(tmp_path):
    """Every module of the window, the command line, the store (SQLite and
    PostgreSQL, Alembic), DICOM, reports and the models' run time imports with
    the spec's excludes unimportable, as in the bundle (optional imports such as
    pydicom's requests fall back; psycopg needs ``ssl``: excluding it broke
    PostgreSQL in the bundle)."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    excludes = _spec_list("excludes")
    done = subprocess.run([sys.executable, "-c", APP_IMPORTS, json.dumps(excludes)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = done.stdout.split()
    assert "psycopg" in loaded and "eyescreen_desktop.gui.main_window" in loaded and "PIL.Image" in loaded
    assert not [m for m in loaded for x in excludes if m == x or m.startswith(x + ".")]


def test_leaving_out_ssl_would_break_postgresql(tmp_path):
    """The check above sees a left-out module the app needs."""
    done = subprocess.run([sys.executable, "-c", APP_IMPORTS, json.dumps(["ssl"])], cwd=tmp_path,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0 and "ssl" in done.stderr


# ---------------------------------------------------------------------- one program on Linux

@pytest.mark.parametrize("name, expected", [("eyescreen", "eyescreen "), ("eyescreen-desktop", "usage: eyescreen gui")])
def test_the_program_is_chosen_by_the_name_it_was_started_by(tmp_path, name, expected):
    """On Linux ``eyescreen-desktop`` is a link to ``eyescreen``: the entry script
    opens the window when started by that name and is the command line otherwise."""
    script = tmp_path / name
    shutil.copy(ROOT / "packaging" / "eyescreen_main.py", script)
    args = ["--version"] if name == "eyescreen" else ["--help"]
    done = subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(expected)


# ---------------------------------------------------------------------- shared library copies

def test_duplicate_libraries_become_relative_links_to_the_copy_that_stays():
    toc = [("numpy.libs/libgfortran-040039e1-0352e75f.so.5.0.0", "/v/numpy.libs/g", "BINARY"),
           ("opencv_python_headless.libs/libgfortran-83c28eba.so.5.0.0", "/v/cv/g", "BINARY"),
           ("psycopg_binary.libs/libcrypto-3a0647ea.so.3", "/v/pg/c", "BINARY"),
           ("libcrypto.so.3", "/usr/lib/libcrypto.so.3", "BINARY"),
           ("libzstd.so.1", "/usr/lib/libzstd.so.1", "BINARY"),
           ("pillow.libs/libzstd-40ad5e7e.so.1.5.7", "/v/pil/z", "BINARY"),
           ("pillow.libs/liblzma-de26b416.so.5.8.4", "/v/pil/x", "BINARY"),   # no liblzma.so.5 here: stays
           ("cv2/cv2.abi3.so", "/v/cv2.so", "EXTENSION")]
    out = dict((d, (s, t)) for d, s, t in linux_slim.share_duplicate_libs(toc))
    assert out["opencv_python_headless.libs/libgfortran-83c28eba.so.5.0.0"] == \
        ("../numpy.libs/libgfortran-040039e1-0352e75f.so.5.0.0", "SYMLINK")
    assert out["libcrypto.so.3"] == ("psycopg_binary.libs/libcrypto-3a0647ea.so.3", "SYMLINK")
    assert out["pillow.libs/libzstd-40ad5e7e.so.1.5.7"] == ("../libzstd.so.1", "SYMLINK")
    assert out["pillow.libs/liblzma-de26b416.so.5.8.4"] == ("/v/pil/x", "BINARY")
    assert out["numpy.libs/libgfortran-040039e1-0352e75f.so.5.0.0"] == ("/v/numpy.libs/g", "BINARY")
    assert out["cv2/cv2.abi3.so"] == ("/v/cv2.so", "EXTENSION")


def test_a_library_of_another_major_version_is_never_shared():
    """OpenCV 4.11's OpenBLAS needs libgfortran.so.3 (GFORTRAN_1.0): linked to NumPy's
    libgfortran.so.5, the bundle's cv2 failed to import ('version GFORTRAN_1.0 not found')."""
    toc = [("numpy.libs/libgfortran-040039e1-0352e75f.so.5.0.0", "/v/numpy.libs/g", "BINARY"),
           ("opencv_python_headless.libs/libgfortran-91cc3cb1.so.3.0.0", "/v/cv/g3", "BINARY")]
    out = dict((d, (s, t)) for d, s, t in linux_slim.share_duplicate_libs(toc))
    assert out["opencv_python_headless.libs/libgfortran-91cc3cb1.so.3.0.0"] == ("/v/cv/g3", "BINARY")


def test_only_libraries_outside_the_wheels_libs_folders_are_stripped():
    assert linux_slim.in_wheel_libs("numpy.libs/libscipy_openblas64_-32a4b2a6.so")
    assert linux_slim.in_wheel_libs("opencv_python_headless.libs/libaom-a0d22147.so.3.14.1")
    assert not linux_slim.in_wheel_libs("numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so")
    assert not linux_slim.in_wheel_libs("libpython3.11.so.1.0")


# ---------------------------------------------------------------------- Qt's ICU data

def test_icu_items_dropped_are_the_trees_qt_never_opens():
    items = ["brkitr/cjdict.dict", "translit/root.res", "unit/de.res", "curr/fr.res", "lang/ja.res",
             "region/en.res", "rbnf/de.res", "unames.icu", "rfc3491.spp", "confusables.cfu",
             "zone/de.res", "zone/en.res", "zone/en_GB.res", "zone/root.res", "zone/pool.res",
             "de.res", "en.res", "en_GB.res", "root.res", "pool.res", "res_index.res",
             "coll/de.res", "coll/root.res", "coll/ucadata.icu", "cnvalias.icu", "ibm-5348_P100-1997.cnv",
             "supplementalData.res", "zoneinfo64.res", "metaZones.res", "likelySubtags.res"]
    dropped = set(linux_slim.icu_items_to_drop(items))
    assert dropped == {"brkitr/cjdict.dict", "translit/root.res", "unit/de.res", "curr/fr.res", "lang/ja.res",
                       "region/en.res", "rbnf/de.res", "unames.icu", "rfc3491.spp", "confusables.cfu",
                       "zone/de.res", "de.res"}


ICU_PROBE = r'''
import functools, json
from PySide6.QtCore import QCollator, QCoreApplication, QDateTime, QLocale, QStringDecoder, Qt, QTimeZone
app = QCoreApplication([])
out = {}
words = ["Zebra", "äpple", "apple", "Øl", "file10", "file9", "Ärger", "öl", "ångström", "chata", "cesta", "hrad",
         "İstanbul", "東京", "서울", "北京"]
for loc in ("en_US", "sv_SE", "de_DE", "da_DK", "cs_CZ", "tr_TR", "ja_JP", "zh_CN", "ko_KR"):
    c = QCollator(QLocale(loc))
    c.setNumericMode(True)        # as QFileDialog sorts file names
    c.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
    out["collation " + loc] = sorted(words, key=functools.cmp_to_key(c.compare))
for loc in ("tr_TR", "en_US", "lt_LT", "el_GR", "de_DE"):
    out["upper " + loc] = QLocale(loc).toUpper("istanbul ıi straße ἀλφα")
    out["lower " + loc] = QLocale(loc).toLower("İSTANBUL IΣ ΣΑΣ")
for name in ("windows-1252", "ISO-8859-15", "KOI8-R", "IBM437", "macintosh", "Shift_JIS", "GB18030", "Big5"):
    out["codec " + name] = QStringDecoder(name).isValid()
berlin = QTimeZone(b"Europe/Berlin")
out["zone ids"] = len(QTimeZone.availableTimeZoneIds())
for loc in ("en_US", "de_DE", "fr_FR"):
    out["zone name " + loc] = berlin.displayName(QTimeZone.TimeType.StandardTime, QTimeZone.NameType.LongName,
                                                 QLocale(loc))
out["date"] = QLocale("de_DE").toString(QDateTime.fromSecsSinceEpoch(1_700_000_000, berlin),
                                         QLocale.FormatType.ShortFormat)
print(json.dumps(out, ensure_ascii=False))
'''


def _qt_icu_lib() -> Path | None:
    try:
        import PySide6
    except ImportError:
        return None
    found = sorted((Path(PySide6.__file__).parent / "Qt" / "lib").glob("libicudata.so.*"))
    return found[0] if found else None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Qt's ICU ships with PySide6 on Linux only")
def test_trimmed_icu_data_answers_qt_as_the_full_data_does(tmp_path):
    """Qt's ICU calls give the same answers with the bundle's trimmed ICU data
    (loaded in place of PySide6's by LD_PRELOAD): collation in nine locales with
    numeric file-name order, locale case mapping, the single-byte codecs, time-zone
    ids and English names, dates. What goes is said here: East Asian multi-byte
    codecs for QStringDecoder (Python's own codecs keep them) and time-zone names
    in other languages (English instead)."""
    lib = _qt_icu_lib()
    if lib is None or linux_slim.tools_missing():
        pytest.skip(f"needs PySide6's ICU and {linux_slim.tools_missing() or 'binutils, icupkg'}")
    trimmed = linux_slim.trimmed_icu_data(lib, tmp_path / "icu")
    assert trimmed.stat().st_size < 0.25 * lib.stat().st_size   # 32 MB -> about 5.5 MB

    def probe(preload: Path | None) -> dict:
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        if preload:
            env["LD_PRELOAD"] = str(preload)
        done = subprocess.run([sys.executable, "-c", ICU_PROBE], env=env, capture_output=True, text=True,
                              timeout=120, check=True)
        return json.loads(done.stdout)

    full, small = probe(None), probe(trimmed)
    changed = {k for k in full if full[k] != small[k]}
    assert changed == {"codec Shift_JIS", "codec GB18030", "codec Big5", "zone name de_DE", "zone name fr_FR"}
    assert full["codec Shift_JIS"] and not small["codec Shift_JIS"]
    assert small["zone name de_DE"] == small["zone name en_US"] == full["zone name en_US"]
    assert small["codec windows-1252"] and small["zone ids"] > 400
    assert full["collation sv_SE"] != full["collation en_US"]   # the Swedish tailoring is still applied


def test_the_bundle_report_names_opencvs_parts_and_excuses_only_listed_differences():
    """packaging/bundle_report.py: OpenCV's FFmpeg and OpenBLAS are counted apart (they are most
    of its weight), and two builds may differ only in files docs/bundle-size.json lists."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bundle_report", ROOT / "packaging" / "bundle_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    assert report.component("_internal/opencv_python_headless.libs/libavcodec-1.so.59") == \
        "OpenCV: FFmpeg (video files)"
    assert report.component("_internal/opencv_python_headless.libs/libopenblas-r0-f.so") == "OpenCV: OpenBLAS"
    assert report.component("_internal/cv2/cv2.abi3.so") == "OpenCV"
    allowed = json.loads((ROOT / "docs" / "bundle-size.json").read_text(encoding="utf-8"))["differs_between_builds"]
    a = {"_internal/numpy-2.4.6.dist-info/RECORD": "1", "eyescreen": "x", "_internal/libfoo.so": "f"}
    b = {"_internal/numpy-2.4.6.dist-info/RECORD": "2", "eyescreen": "y"}
    wrong, excused = report.differences(a, b, allowed)
    assert excused == ["_internal/numpy-2.4.6.dist-info/RECORD"] and wrong == ["_internal/libfoo.so", "eyescreen"]
    assert all(reason.strip() for reason in allowed.values())   # every exception says why
