"""The Linux bundle's slimming steps, used by eyescreen.spec and tested by
tests/test_packaging.py. Each one keeps every feature of the clinic's app and
is checked by ``make bundle-test`` (packaging/README.md says what each saves).

* ``stripped_copy``: debug symbols leave the shared libraries that are not in a
  wheel's ``*.libs/`` folder (those were rewritten by auditwheel's patchelf,
  and stripping numpy's OpenBLAS there broke it).
* ``trimmed_icu_data``: Qt's ICU data library (32 MB) keeps what the 31 ICU
  functions QtCore calls can reach (collation, converters, calendars, time
  zones) and loses the trees no QtCore call opens (break iterators,
  transliteration, unit, currency, language and region names, spelled-out
  numbers, the main tree's date and number data) plus time-zone names in
  languages other than English and the East Asian multi-byte converter tables.
* ``share_duplicate_libs``: where two wheels ship the same library (OpenSSL 3,
  libgfortran, zstd, xz), one copy serves both through a symbolic link.
* ``slim_folder``: the stripping and the ICU trimming, run on the collected folder.

Tools: binutils (``readelf``, ``strip``, ``as``, ``ld``) and ICU's ``icupkg``
(Debian: binutils, icu-devtools; ``make system-deps`` installs them).
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

# ICU data items (ToC names without the icudtNNl/ prefix) dropped from Qt's copy.
# QtCore 6 imports only ucol_* (collation), ucnv_* (named text codecs), ucal_*
# (time-zone ids and display names) and u_strToUpper/u_strToLower from ICU.
ICU_DROP = (
    "brkitr/*",     # word/line break dictionaries: QtCore has its own text boundaries
    "translit/*",   # transliteration: no QtCore call
    "rbnf/*",       # spelled-out numbers: no QtCore call
    "unit/*",       # unit names (MeasureFormat): no QtCore call
    "curr/*",       # currency names: QLocale uses Qt's own CLDR tables
    "lang/*",       # language display names: likewise
    "region/*",     # region display names: likewise
    "unames.icu",   # character names (u_charName): no QtCore call
    "confusables*.cfu",  # spoof checking: no QtCore call
    "*.spp",        # StringPrep profiles (IDNA, LDAP): QUrl has its own IDNA
)
# the main tree's locale data (dates, numbers, ...): QLocale formats with Qt's own
# CLDR tables; ICU reads it only to name a time zone (in English then, as below)
ICU_MAIN_KEEP = ("root.res", "en.res", "en_*.res", "pool.res", "res_index.res")
_LOCALE_ITEM = re.compile(r"[a-z]{2,3}(_[A-Za-z0-9_]+)?\.res")
# time-zone display names: English (and the root fallback) only; a time-zone name
# asked for in another language comes in English (the app never shows one)
ICU_ZONE_KEEP = ("zone/pool.res", "zone/root.res", "zone/en.res", "zone/en_*.res", "zone/tzdbNames.res")
# converter tables bigger than this are the East Asian multi-byte ones (Shift-JIS,
# EUC, GB18030, Big5, EBCDIC DBCS) and ISO 2022 compound text; only a Qt
# QStringConverter opened by such a name uses them (Python's own codecs, which
# pydicom uses for DICOM character sets, are untouched)
ICU_MBCS_BYTES = 60_000


def run(*cmd: str | Path) -> str:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True).stdout


def is_elf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def has_symbol_table(path: Path) -> bool:
    """True when the library still carries ``.symtab`` (and usually debug sections)."""
    return re.search(r"\]\s+\.symtab\s", run("readelf", "-SW", path)) is not None


def in_wheel_libs(dest: str) -> bool:
    """A library that auditwheel vendored into ``<package>.libs/`` (patchelf-edited)."""
    return any(part.endswith(".libs") for part in dest.replace("\\", "/").split("/")[:-1])


def stripped_copy(src: Path, out: Path) -> Path:
    """``strip --strip-unneeded`` of ``src`` written to ``out`` (the dynamic symbols stay)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    run("strip", "--strip-unneeded", "-o", out, src)
    return out


# ---------------------------------------------------------------------- ICU data

def _icu_symbol(lib: Path) -> tuple[str, int, int]:
    """(name, address, size) of the ICU common-data symbol (icudtNN_dat) in libicudata."""
    for line in run("nm", "-S", "-D", "--defined-only", lib).splitlines():
        parts = line.split()
        if len(parts) == 4 and re.fullmatch(r"icudt\d+_dat", parts[3]):
            return parts[3], int(parts[0], 16), int(parts[1], 16)
    raise ValueError(f"{lib}: no icudtNN_dat symbol")


def _file_offset(lib: Path, address: int) -> int:
    for line in run("readelf", "-SW", lib).splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
        if m and m.group(1) != "NULL":
            addr, off, size = (int(m.group(i), 16) for i in (2, 3, 4))
            if addr <= address < addr + size:
                return address - addr + off
    raise ValueError(f"{lib}: address {address:#x} is in no section")


def icu_items_to_drop(items: list[str]) -> list[str]:
    def dropped(item: str) -> bool:
        if any(fnmatch.fnmatchcase(item, p) for p in ICU_DROP):
            return True
        if item.startswith("zone/"):
            return not any(fnmatch.fnmatchcase(item, p) for p in ICU_ZONE_KEEP)
        return _LOCALE_ITEM.fullmatch(item) is not None and not any(fnmatch.fnmatchcase(item, p)
                                                                     for p in ICU_MAIN_KEEP)
    return [i for i in items if dropped(i)]


def trimmed_icu_data(lib: Path, work: Path) -> Path:
    """A copy of Qt's ``libicudataNN`` rebuilt around a smaller ICU data package:
    the package (the one exported symbol ``icudtNN_dat``) is cut out of the
    library, the items of ICU_DROP, the non-English time-zone names and the large
    multi-byte converters are removed with ``icupkg`` (which refuses to leave an
    item whose dependency was removed), and the package is linked into a library
    with the same name, SONAME and symbol."""
    work.mkdir(parents=True, exist_ok=True)
    symbol, address, size = _icu_symbol(lib)
    data = lib.read_bytes()
    offset = _file_offset(lib, address)
    package = f"{symbol[:-len('_dat')]}{'l' if sys.byteorder == 'little' else 'b'}"   # icudt73l
    full, small = work / f"{package}-full.dat", work / f"{package}.dat"
    full.write_bytes(data[offset:offset + size])
    items = run("icupkg", "--auto_toc_prefix", "-l", full).split()
    cnv_sizes = {}
    if any(i.endswith(".cnv") for i in items):
        extract = work / "cnv"
        shutil.rmtree(extract, ignore_errors=True)
        extract.mkdir()
        run("icupkg", "--auto_toc_prefix", "-x", "*.cnv", "-d", extract, full)
        cnv_sizes = {p.name: p.stat().st_size for p in extract.glob("*.cnv")}
        shutil.rmtree(extract)
    drop = icu_items_to_drop(items) + sorted(n for n, s in cnv_sizes.items() if s > ICU_MBCS_BYTES)
    if not drop:  # already trimmed (a rebuild that kept the folder)
        full.unlink()
        return lib
    listing = work / "drop.txt"
    for _ in range(5):  # converters that extend a dropped table go with it (icupkg names them)
        listing.write_text("\n".join(drop) + "\n", encoding="ascii")
        small.unlink(missing_ok=True)
        done = subprocess.run(["icupkg", "--auto_toc_prefix", "-r", str(listing), str(full), str(small)],
                              capture_output=True, text=True)
        dependents = re.findall(r"Item (\S+\.cnv) depends on missing item", done.stdout + done.stderr)
        if done.returncode == 0 or not dependents:
            break
        drop += dependents
    if done.returncode != 0:
        raise RuntimeError(f"icupkg could not trim {lib}:\n{done.stdout}{done.stderr}")
    soname = re.search(r"\(SONAME\)\s+Library soname: \[(.+?)\]", run("readelf", "-d", lib)).group(1)
    asm = work / "icudata.s"
    asm.write_text(f"""\
    .section .rodata
    .balign 16
    .globl {symbol}
    .type {symbol}, %object
{symbol}:
    .incbin "{small}"
    .size {symbol}, . - {symbol}
    .section .note.GNU-stack,"",%progbits
""", encoding="ascii")
    obj, out = work / "icudata.o", work / "lib" / soname
    out.parent.mkdir(exist_ok=True)
    run("as", "-o", obj, asm)
    run("ld", "-shared", "-soname", soname, "-z", "noexecstack", "-o", out, obj)
    full.unlink()
    return out


def slim_folder(internal: Path, work: Path) -> dict[str, int]:
    """Strip and trim the collected bundle in place (``internal`` is the bundle's
    ``_internal`` folder, freshly written by PyInstaller's COLLECT): every shared
    library outside the wheels' ``*.libs/`` folders that still has a symbol
    table is stripped, and Qt's ICU data library is replaced by its trimmed
    copy. Returns the bytes saved per step."""
    saved = {"strip": 0, "icu": 0}
    for path in sorted(internal.rglob("*")):
        if path.is_symlink() and not path.exists():
            path.unlink()  # PyInstaller's top-level link to a library pruned by the spec
            continue
        if path.is_symlink() or not path.is_file() or not (".so" in path.name or path.suffix == ".so"):
            continue
        rel = path.relative_to(internal).as_posix()
        before = path.stat().st_size
        if path.name.startswith("libicudata.so"):
            trimmed = trimmed_icu_data(path, work / "icu")
            if trimmed != path:
                shutil.copyfile(trimmed, path)
            saved["icu"] += before - path.stat().st_size
        elif not in_wheel_libs(rel) and is_elf(path) and has_symbol_table(path):
            out = stripped_copy(path, work / "stripped" / rel)
            shutil.copyfile(out, path)
            out.unlink()
            saved["strip"] += before - path.stat().st_size
    return saved


# Two copies of one library: (folder/name prefix of the copy that goes, folder/name
# prefix of the copy that serves both). The dynamic loader maps a file once,
# whichever name it is opened by; each pair was checked symbol by symbol:
# * numpy's GNU Fortran run-time serves OpenCV's OpenBLAS, which needs only the
#   GFORTRAN_8 symbols every libgfortran.so.5 since GCC 8 has (and cv2 imports
#   numpy first, so numpy's copy is already mapped);
# * psycopg's OpenSSL 3.5 (vendored for libpq) serves Python's _hashlib and _ssl,
#   which link libcrypto.so.3 and libssl.so.3 and ask only for OPENSSL_3.0.0
#   symbols (libssl and libcrypto stay a matching pair);
# * the zstd and xz libraries the bundle already carries for QtCore and Python's
#   lzma module serve Pillow's libtiff (it calls 12 long-stable ZSTD_* functions
#   and lzma_*@XZ_5.0).
SHARED_COPIES = (
    ("opencv_python_headless.libs/libgfortran-", "numpy.libs/libgfortran-"),
    ("libcrypto.so.3", "psycopg_binary.libs/libcrypto-"),
    ("libssl.so.3", "psycopg_binary.libs/libssl-"),
    ("pillow.libs/libzstd-", "libzstd.so.1"),
    ("pillow.libs/liblzma-", "liblzma.so.5"),
)


def _so_major(name: str) -> str:
    """``libgfortran-91cc3cb1.so.3.0.0`` -> "3": the ABI a shared library's SONAME promises."""
    m = re.search(r"\.so\.(\d+)", name)
    return m.group(1) if m else ""


def share_duplicate_libs(binaries: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """PyInstaller TOC entries with each SHARED_COPIES duplicate replaced by a
    relative symbolic link to the copy that stays (dests use "/"). Only a copy of
    the same major version (``.so.N``) may stand in: OpenCV 4.11's OpenBLAS needs
    libgfortran.so.3 (GFORTRAN_1.0), which NumPy's libgfortran.so.5 does not give."""
    dests = sorted(d for d, _, _ in binaries)
    out = []
    for dest, src, typecode in binaries:
        for gone, kept in SHARED_COPIES:
            target = next((d for d in dests if d.startswith(kept) and _so_major(d) == _so_major(dest)), None) \
                if dest.startswith(gone) else None
            if target is not None:
                rel = Path(*[".."] * dest.count("/"), target).as_posix()
                dest, src, typecode = dest, rel, "SYMLINK"
                break
        out.append((dest, src, typecode))
    return out


def tools_missing() -> list[str]:
    return [t for t in ("readelf", "nm", "strip", "as", "ld", "icupkg") if shutil.which(t) is None]
