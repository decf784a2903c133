#!/usr/bin/env bash
# Install the system programs xiuhua's tests and demo use, where they are missing.
# Debian/Ubuntu: uses apt-get as root (or through passwordless sudo); anywhere else it
# prints exactly what to install and fails.
set -euo pipefail

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have_cmd mosquitto || need+=(mosquitto)
have_cmd mosquitto_passwd || need+=(mosquitto-clients mosquitto)
have_cmd espeak-ng || need+=(espeak-ng)
have_cmd sox || need+=(sox)
have_cmd ffmpeg || need+=(ffmpeg)  # the hub converts recorded voice messages
[ -f /usr/include/portaudio.h ] || need+=(portaudio19-dev)
have_cmd gcc || need+=(gcc)
ls /usr/share/fonts/truetype/wqy/wqy-microhei.ttc >/dev/null 2>&1 || need+=(fonts-wqy-microhei)
have_cmd chromium || need+=(chromium)  # browser tests drive Debian's build
have_cmd openssl || need+=(openssl)    # TLS tests make their own CA
have_cmd nats-server || need+=(nats-server)  # the second broker (MQTT gateway) tests

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
# de-duplicate
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
echo "system packages missing: ${need[*]}" >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install them with your package manager (Debian names: ${need[*]}) and rerun" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "run: sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
