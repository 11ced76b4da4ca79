#!/bin/sh
# Install the app folder this script sits in (copied from the USB stick), with no network:
# the app in PREFIX/lib/aimedx, `aimedx` in PREFIX/bin, a menu entry and its icon.
#   ./install.sh [PREFIX]      PREFIX defaults to ~/.local (this user); /usr/local as root
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${1:-$HOME/.local}
APP=$PREFIX/lib/aimedx
ICONS=$PREFIX/share/icons/hicolor
mkdir -p "$PREFIX/bin" "$PREFIX/lib" "$PREFIX/share/applications" "$ICONS/scalable/apps" "$ICONS/256x256/apps"
if [ "$HERE" != "$APP" ]; then
    if [ -e "$APP" ] && [ ! -x "$APP/aimedx" ]; then
        echo "install.sh: $APP exists and is not an AI-MEDX install; not replacing it" >&2
        exit 1
    fi
    rm -rf "$APP"
    cp -a "$HERE" "$APP"
fi
ln -sf "$APP/aimedx" "$PREFIX/bin/aimedx"
cp "$HERE/aimedx.svg" "$ICONS/scalable/apps/aimedx.svg"
cp "$HERE/_internal/resources/icons/aimedx.png" "$ICONS/256x256/apps/aimedx.png"
sed "s|^Exec=.*|Exec=$APP/aimedx %f|" "$HERE/aimedx.desktop" > "$PREFIX/share/applications/aimedx.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$PREFIX/share/applications" || true
echo "installed $APP; check it with: $PREFIX/bin/aimedx --self-test"
