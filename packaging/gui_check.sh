#!/usr/bin/env bash
# Start the frozen app's window under Xvfb: seconds until it is on screen, then a screenshot.
#   packaging/gui_check.sh [cpu|gpu] [OUT.png]     (default cpu, docs/frozen_app.png)
# Needs Xvfb, xwininfo, xwd and ImageMagick (Debian: xvfb x11-utils x11-apps imagemagick).
set -euo pipefail
cd "$(dirname "$0")/.."
APP=$PWD/packaging/dist/${1:-cpu}/aimedx/aimedx
OUT=$(realpath -m "${2:-docs/frozen_app.png}")
DISPLAY_NUMBER=:${GUI_CHECK_DISPLAY:-77}
home=$(mktemp -d)
# A fresh user who has already accepted the first-start notice, so the main window is what shows.
mkdir -p "$home/.config/AI-MEDX"
printf '[General]\nnotice_accepted=true\n' > "$home/.config/AI-MEDX/AI-MEDX Desktop.ini"
Xvfb "$DISPLAY_NUMBER" -screen 0 1600x1000x24 -nolisten tcp &
xvfb=$!
trap 'kill "$app" "$xvfb" 2>/dev/null || true; rm -rf "$home"' EXIT
sleep 1
started=$(date +%s%N)
env -i HOME="$home" PATH=/usr/bin:/bin LANG=C.UTF-8 DISPLAY="$DISPLAY_NUMBER" "$APP" &
app=$!
window=
until [ -n "$window" ]; do
    kill -0 "$app" 2>/dev/null || { echo "the app exited before showing its window" >&2; exit 1; }
    sleep 0.1
    for id in $(xwininfo -display "$DISPLAY_NUMBER" -root -tree | awk '/"AI-MEDX Desktop/ {print $1}'); do
        if xwininfo -display "$DISPLAY_NUMBER" -id "$id" | grep -q IsViewable; then
            window=$id
        fi
    done
done
echo "window on screen $(( ($(date +%s%N) - started) / 1000000 )) ms after start"
sleep "${SETTLE_SECONDS:-20}"   # the engine loads and the sample opens in the background
mkdir -p "$(dirname "$OUT")"
xwd -display "$DISPLAY_NUMBER" -id "$window" -silent | convert xwd:- "$OUT"
echo "screenshot: $OUT"
