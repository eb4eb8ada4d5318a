#!/usr/bin/env bash
# Installs what building and testing need on Debian/Ubuntu: Mesa's software Vulkan driver
# (lavapipe) so wgpu finds an adapter without a GPU; for the browser test, Debian's chromium
# (WebGPU on SwiftShader), Node.js and, from npm, playwright-core (package-lock.json). Safe to
# run again.
set -euo pipefail
need=()
dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || need+=(mesa-vulkan-drivers)
dpkg -s libvulkan1 >/dev/null 2>&1 || need+=(libvulkan1)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}"
fi
cd "$(dirname "$0")/.."
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --loglevel=error
# Mesa warns when this is unset; give it a private directory.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  mkdir -p /tmp/xdg-runtime && chmod 700 /tmp/xdg-runtime
fi
