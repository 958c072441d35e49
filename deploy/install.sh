#!/usr/bin/env bash
# Installs (or upgrades) Sweep on Raspberry Pi OS 64-bit from the arm64 bundle
# (npm run bundle:arm64 -> dist/sweep-linux-arm64.tar.gz). Run as root on the device, or inside
# an image build's chroot with --image (deploy/image/).
#
# Layout:  /opt/sweep         the bundle (root-owned, read-only to the service): bin/node, dist/sweep.mjs, node_modules
#          /etc/sweep         sweep.json (0640 root:sweep), secrets.json (0600 sweep, written by sweep-provision)
#          /var/lib/sweep     keys and state (0700 sweep)
#          /etc/systemd/system/sweep.service
#          /usr/local/bin/sweep, /usr/local/sbin/sweep-provision
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: install.sh [--bundle FILE] [--profile intercom|deskphone] [--image] [--no-start]
  --bundle FILE   the bundle tarball (default: sweep-linux-arm64.tar.gz next to this script or in the current directory)
  --profile NAME  the config profile copied to /etc/sweep/sweep.json when there is none yet (default intercom)
  --image         building an image (chroot): skip the architecture check, do not start anything
  --no-start      install and enable, but do not (re)start the service
USAGE
}

bundle=""
profile="intercom"
image=0
start=1
while (($#)); do
  case "$1" in
    --bundle) bundle="${2:?--bundle needs a file}"; shift 2 ;;
    --profile) profile="${2:?--profile needs a name}"; shift 2 ;;
    --image) image=1; start=0; shift ;;
    --no-start) start=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

[[ "$(id -u)" -eq 0 ]] || die "run as root (sudo $0 $*)"
case "$profile" in intercom|deskphone) ;; *) die "--profile: \"$profile\" is not one of intercom, deskphone" ;; esac
if ((image == 0)) && [[ "$(uname -m)" != "aarch64" ]]; then
  die "this bundle is for 64-bit ARM (aarch64); this machine is $(uname -m). Use Raspberry Pi OS 64-bit."
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "$bundle" ]]; then
  for candidate in "$here/sweep-linux-arm64.tar.gz" "$PWD/sweep-linux-arm64.tar.gz"; do
    if [[ -f "$candidate" ]]; then bundle="$candidate"; break; fi
  done
fi
[[ -n "$bundle" && -f "$bundle" ]] || die "no bundle found; pass --bundle sweep-linux-arm64.tar.gz"

# 1. The service user: no login, no home outside its state directory, in the audio and dialout groups.
for group in audio dialout; do
  getent group "$group" >/dev/null || groupadd --system "$group"
done
if ! id sweep >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/sweep --no-create-home --shell /usr/sbin/nologin sweep
  say "created user sweep"
fi
usermod -a -G audio,dialout sweep

# 2. The bundle, swapped in whole so an interrupted upgrade leaves the old one working.
tmp="$(mktemp -d /opt/.sweep-install.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$bundle" -C "$tmp" --no-same-owner
[[ -x "$tmp/sweep/bin/node" && -f "$tmp/sweep/dist/sweep.mjs" ]] || die "$bundle is not a Sweep bundle (no sweep/bin/node, sweep/dist/sweep.mjs)"
chown -R root:root "$tmp/sweep"
chmod -R u=rwX,go=rX "$tmp/sweep"
if [[ -d /opt/sweep ]]; then
  rm -rf /opt/sweep.old
  mv /opt/sweep /opt/sweep.old
fi
mv "$tmp/sweep" /opt/sweep
rm -rf /opt/sweep.old
sync
say "installed $(/opt/sweep/bin/node /opt/sweep/dist/sweep.mjs --version 2>/dev/null || echo '(version unknown)') in /opt/sweep"

# 3. Commands.
cat >/usr/local/bin/sweep <<'SH'
#!/bin/sh
exec /opt/sweep/bin/node /opt/sweep/dist/sweep.mjs "$@"
SH
chmod 0755 /usr/local/bin/sweep
cat >/usr/local/sbin/sweep-provision <<'SH'
#!/bin/sh
# Exchanges a one-time code (from `sweep server provision-code add` on the server host) for this
# device's credential: keys are made in /var/lib/sweep, the password goes to /etc/sweep/secrets.json (0600).
set -eu
/opt/sweep/bin/node /opt/sweep/dist/sweep.mjs provision --config /etc/sweep/sweep.json "$@"
secrets="$(/opt/sweep/bin/node -e 'const c=require("/etc/sweep/sweep.json");const p=require("path");console.log(p.resolve("/etc/sweep",c.access.secretsFile))')"
chown sweep:sweep "$secrets" && chmod 0600 "$secrets"
chown -R sweep:sweep /var/lib/sweep
echo "now: systemctl restart sweep"
SH
chmod 0750 /usr/local/sbin/sweep-provision

# 4. Config, secrets and state. An existing config is never overwritten.
install -d -m 0750 -o root -g sweep /etc/sweep
if [[ ! -f /etc/sweep/sweep.json ]]; then
  install -m 0640 -o root -g sweep "/opt/sweep/firmware-config/profiles/$profile.json" /etc/sweep/sweep.json
  # The profile's "$schema" points next to it in the source tree; point it at the installed copy.
  # shellcheck disable=SC2016 # the $ is the JSON key "$schema", not a shell expansion
  sed -i 's#"\$schema": "../endpoint-config.schema.json"#"$schema": "/opt/sweep/firmware-config/endpoint-config.schema.json"#' /etc/sweep/sweep.json
  say "wrote /etc/sweep/sweep.json from the $profile profile"
fi
if [[ -f /etc/sweep/secrets.json ]]; then
  chown sweep:sweep /etc/sweep/secrets.json
  chmod 0600 /etc/sweep/secrets.json
fi
install -d -m 0700 -o sweep -g sweep /var/lib/sweep

# 5. The unit.
install -m 0644 /opt/sweep/deploy/sweep.service /etc/systemd/system/sweep.service
if ((image == 0)); then systemctl daemon-reload; fi
systemctl enable sweep.service >/dev/null 2>&1 || systemctl enable sweep.service
if [[ ! -f /etc/sweep/secrets.json ]]; then
  cat <<'NEXT'
install.sh: next steps (README "From a blank SD card to a running intercom", steps 4-7):
  1. Edit /etc/sweep/sweep.json: endpoint.id, endpoint.label, access.url, access.serverPublicKey
     (sweep server pubkey), access.username. The placeholders are refused until replaced.
  2. Audio (ALSA both ways; the profile says plughw:CARD=Device,DEV=0, a USB sound card):
       sweep audio list
       sudo -u sweep sweep audio test --playback plughw:CARD=<name>,DEV=0 --capture plughw:CARD=<name>,DEV=0
     then put the names in audio.sink.device and audio.source.device.
  3. Panel: panel.device.path is the panel's serial port (/dev/ttyAMA0 on the GPIO UART,
     /dev/serial/by-id/... for a USB adapter: ls /dev/serial/by-id/).
  4. sudo sweep config check --no-secrets /etc/sweep/sweep.json   (names each field still wrong)
  5. sudo sweep-provision   (the one-time code from sweep server provision-code add)
  6. sudo systemctl start sweep; journalctl -u sweep -f
NEXT
fi
if ((start == 1)); then
  if [[ -f /etc/sweep/secrets.json ]]; then
    systemctl restart sweep.service
    say "sweep.service restarted (journalctl -u sweep -f)"
  else
    say "not started: provision first (sweep-provision), then systemctl start sweep"
  fi
fi
