"""What the desktop bundle is made of, and whether two builds of it are the same.

    python packaging/bundle_report.py sizes dist/EyeScreen [--previous docs/bundle-size.json] [--write FILE]
    python packaging/bundle_report.py manifest dist/EyeScreen OUT.json
    python packaging/bundle_report.py compare A.json B.json [--exceptions docs/bundle-size.json]

``sizes`` prints the bundle's size by component beside the committed figures
(``make bundle-test`` runs it), so growth from a new wheel is seen in the diff
before it reaches the 400 MB cap; ``--write`` records the new figures
(``make bundle-size``). ``manifest`` lists every file with its SHA-256;
``compare`` says which files of two builds differ, apart from those
docs/bundle-size.json lists under ``differs_between_builds`` with the reason.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import sys
from pathlib import Path

# (component, pattern on the path inside the bundle), first match wins: OpenCV's
# FFmpeg and OpenBLAS are named apart because they are most of OpenCV's weight
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("OpenCV: FFmpeg (video files)", r"opencv_python_headless\.libs/lib(av|sw|vpx|aom|dav1d|avif)"),
    ("OpenCV: OpenBLAS", r"opencv_python_headless\.libs/lib(openblas|gfortran|quadmath)"),
    ("OpenCV", r"(cv2|opencv_python_headless\.libs)/"),
    ("Qt (PySide6)", r"(PySide6|shiboken6)/"),
    ("ONNX Runtime", r"onnxruntime/"),
    ("NumPy", r"numpy(\.libs)?/"),
    ("EyeScreen models", r"eyescreen_desktop/models/"),
    ("EyeScreen resources", r"eyescreen_desktop/resources/"),
    ("PostgreSQL client (psycopg)", r"psycopg[^/]*/"),
    ("Pillow", r"(PIL|pillow\.libs)/"),
    ("reportlab and PDF", r"(reportlab|pypdfium2[^/]*)/"),
    ("Python and its modules", r"(libpython|base_library\.zip|lib-dynload/|eyescreen(\.exe)?$)"),
)
OTHER = "other libraries"


def component(relative: str) -> str:
    inside = relative.split("_internal/", 1)[-1]
    for name, pattern in COMPONENTS:
        if re.match(pattern, inside) or re.match(pattern, relative):
            return name
    return OTHER


def files(bundle: Path) -> list[Path]:
    return sorted(p for p in bundle.rglob("*") if p.is_file() or p.is_symlink())


def sizes(bundle: Path) -> dict[str, int]:
    """Bytes by component (symbolic links count nothing: they share their target)."""
    found: dict[str, int] = {}
    for path in files(bundle):
        if path.is_symlink():
            continue
        name = component(path.relative_to(bundle).as_posix())
        found[name] = found.get(name, 0) + path.stat().st_size
    return found


def table(now: dict[str, int], before: dict[str, float]) -> str:
    """The components, MB before and now, largest first, and the total."""
    rows = [f"{'component':<32} {'before MB':>10} {'now MB':>8} {'change':>8}"]
    names = sorted(set(now) | set(before), key=lambda n: -now.get(n, 0))
    for name in names + ["total"]:
        mb = sum(now.values()) / 1e6 if name == "total" else now.get(name, 0) / 1e6
        old = sum(before.values()) if name == "total" else before.get(name)
        change = "" if old is None else f"{mb - old:+.1f}"
        rows.append(f"{name:<32} {'' if old is None else f'{old:.1f}':>10} {mb:>8.1f} {change:>8}")
    return "\n".join(rows)


def manifest(bundle: Path) -> dict[str, str]:
    """Every file's SHA-256 (a symbolic link: where it points), by path inside the bundle."""
    out = {}
    for path in files(bundle):
        relative = path.relative_to(bundle).as_posix()
        if path.is_symlink():
            out[relative] = "link:" + os.readlink(path)
        else:
            out[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def differences(a: dict[str, str], b: dict[str, str], allowed: dict[str, str]) -> tuple[list[str], list[str]]:
    """(files that differ or exist in one build only, those of them that are allowed)."""
    changed = sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))
    excused = [p for p in changed if any(fnmatch.fnmatch(p, pattern) for pattern in allowed)]
    return [p for p in changed if p not in excused], excused


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sizes")
    p.add_argument("bundle", type=Path)
    p.add_argument("--previous", type=Path, default=Path("docs/bundle-size.json"))
    p.add_argument("--write", type=Path, help="record the figures here (keeps its differs_between_builds)")
    p = sub.add_parser("manifest")
    p.add_argument("bundle", type=Path)
    p.add_argument("out", type=Path)
    p = sub.add_parser("compare")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--exceptions", type=Path, default=Path("docs/bundle-size.json"))
    args = parser.parse_args(argv)

    if args.command == "sizes":
        previous = _read(args.previous)
        now = sizes(args.bundle)
        print(table(now, previous.get("components_mb", {})))
        if args.write:
            kept = _read(args.write)
            record = {"total_mb": round(sum(now.values()) / 1e6, 1),
                      "components_mb": {k: round(v / 1e6, 1) for k, v in sorted(now.items(), key=lambda kv: -kv[1])},
                      "differs_between_builds": kept.get("differs_between_builds", {})}
            args.write.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return 0
    if args.command == "manifest":
        args.out.write_text(json.dumps(manifest(args.bundle), indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return 0
    allowed = _read(args.exceptions).get("differs_between_builds", {})
    wrong, excused = differences(_read(args.a), _read(args.b), allowed)
    for path in excused:
        print(f"differs, as expected: {path}")
    for path in wrong:
        print(f"DIFFERS: {path}", file=sys.stderr)
    print(f"{len(_read(args.a))} files; {len(wrong)} differ unexpectedly, {len(excused)} as listed")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
