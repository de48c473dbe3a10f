#!/bin/sh
# Put EyeScreen in this user's application menu. Run it from the unpacked
# EyeScreen folder (or give that folder as the first argument); it writes
# ~/.local/share/applications/eyescreen.desktop and the icon, nothing else.
# Remove them to undo.
set -eu
here=$(CDPATH= cd -- "${1:-$(dirname -- "$0")}" && pwd)
[ -x "$here/eyescreen-desktop" ] || { echo "no eyescreen-desktop in $here" >&2; exit 1; }
data=${XDG_DATA_HOME:-$HOME/.local/share}
mkdir -p "$data/applications" "$data/icons/hicolor/scalable/apps"
cp "$here/app.svg" "$data/icons/hicolor/scalable/apps/eyescreen.svg"
sed "s|^Exec=.*|Exec=\"$here/eyescreen-desktop\"|" "$here/eyescreen.desktop" > "$data/applications/eyescreen.desktop"
echo "EyeScreen added to the application menu ($data/applications/eyescreen.desktop)"
