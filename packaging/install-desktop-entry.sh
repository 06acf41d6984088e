#!/usr/bin/env bash
# Install the launcher and icon for the current user (freedesktop: GNOME, KDE, XFCE...).
# Run after `pip install .` so that `harmovid-studio` is on PATH.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor"
mkdir -p "$apps" "$icons/scalable/apps" "$icons/256x256/apps"
install -m 644 "$here/harmovid-studio.desktop" "$apps/harmovid-studio.desktop"
install -m 644 "$here/../resources/icons/harmovid-studio.svg" "$icons/scalable/apps/harmovid-studio.svg"
install -m 644 "$here/../resources/icons/harmovid-studio.png" "$icons/256x256/apps/harmovid-studio.png"
command -v update-desktop-database >/dev/null && update-desktop-database "$apps" || true
echo "installed HarmoVid Studio launcher in $apps"
