#!/usr/bin/env bash
# Builds a Debian bookworm arm64 root filesystem with Sweep installed, without Docker or pi-gen:
# mmdebstrap fetches Debian's arm64 packages (their maintainer scripts run through qemu-aarch64 via
# binfmt_misc), then deploy/install.sh --image runs inside it (chroot), and an `admin` user gets
# your SSH key (the only way in: no password is set anywhere). Output: a tarball of the root
# filesystem, to unpack onto a prepared SD card or to feed an image tool. See deploy/image/README.md
# for what was verified.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: build-rootfs.sh --ssh-key FILE [--bundle FILE] [--profile intercom|deskphone] [--out FILE] [--mirror URL]
  --ssh-key FILE  your SSH public key (required: the image has no password, the key is the way in)
  --bundle FILE   the arm64 bundle (default dist/sweep-linux-arm64.tar.gz; npm run bundle:arm64)
  --profile NAME  the config profile for /etc/sweep/sweep.json (default intercom)
  --out FILE      the root filesystem tarball (default dist/sweep-rootfs-arm64.tar)
  --mirror URL    Debian mirror (default http://deb.debian.org/debian)
USAGE
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
key=""
bundle="$root/dist/sweep-linux-arm64.tar.gz"
profile="intercom"
out="$root/dist/sweep-rootfs-arm64.tar"
mirror="http://deb.debian.org/debian"
while (($#)); do
  case "$1" in
    --ssh-key) key="${2:?--ssh-key needs a file}"; shift 2 ;;
    --bundle) bundle="${2:?--bundle needs a file}"; shift 2 ;;
    --profile) profile="${2:?--profile needs a name}"; shift 2 ;;
    --out) out="${2:?--out needs a file}"; shift 2 ;;
    --mirror) mirror="${2:?--mirror needs a URL}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build-rootfs.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

die() { echo "build-rootfs.sh: $*" >&2; exit 1; }
[[ -n "$key" ]] || die "refusing to build a root filesystem nobody can log in to: pass --ssh-key ~/.ssh/id_ed25519.pub"
[[ -f "$key" ]] || die "--ssh-key: $key does not exist"
grep -qE '^(ssh-ed25519|ssh-rsa|ecdsa-sha2-[a-z0-9]+|sk-ssh-ed25519@openssh.com|sk-ecdsa-sha2-[a-z0-9@.]+) ' "$key" || die "--ssh-key: $key is not an SSH public key"
[[ -f "$bundle" ]] || die "--bundle: $bundle does not exist (npm run bundle:arm64)"
case "$profile" in intercom|deskphone) ;; *) die "--profile: \"$profile\" is not one of intercom, deskphone" ;; esac
[[ "$(id -u)" -eq 0 ]] || die "run as root (mmdebstrap --mode=root, chroot)"
command -v mmdebstrap >/dev/null || die "mmdebstrap missing (apt-get install mmdebstrap)"
if [[ "$(uname -m)" != "aarch64" ]] && ! arch-test arm64 >/dev/null 2>&1; then
  die "this machine cannot run arm64 programs: apt-get install qemu-user-static arch-test, and binfmt_misc must be mounted with qemu-aarch64 registered"
fi

mkdir -p "$(dirname "$out")"
name="$(basename "$bundle")"
# The hooks' "$1" (the root filesystem being built) is mmdebstrap's to expand, not this shell's.
# shellcheck disable=SC2016
mmdebstrap --mode=root --arch=arm64 --variant=minbase \
  --include=systemd,systemd-sysv,udev,dbus,openssh-server,sudo,alsa-utils,ca-certificates,openssl,iproute2,netbase,ifupdown,isc-dhcp-client,systemd-timesyncd,kmod \
  --customize-hook="copy-in $bundle $root/deploy/install.sh /tmp" \
  --customize-hook="upload '$key' /tmp/admin.pub" \
  --customize-hook="chroot \"\$1\" bash /tmp/install.sh --image --bundle '/tmp/$name' --profile $profile" \
  --customize-hook='chroot "$1" useradd --create-home --shell /bin/bash --groups sudo admin' \
  --customize-hook='chroot "$1" install -d -m 0700 -o admin -g admin /home/admin/.ssh && chroot "$1" install -m 0600 -o admin -g admin /tmp/admin.pub /home/admin/.ssh/authorized_keys' \
  --customize-hook='printf "admin ALL=(ALL) NOPASSWD: ALL\n" >"$1/etc/sudoers.d/010-admin" && chmod 0440 "$1/etc/sudoers.d/010-admin"' \
  --customize-hook='chroot "$1" passwd -l root && chroot "$1" passwd -l admin' \
  --customize-hook='printf "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n" >"$1/etc/ssh/sshd_config.d/50-sweep.conf"' \
  --customize-hook='echo sweep >"$1/etc/hostname"' \
  --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
  --customize-hook='printf "[Unit]\nDescription=Make this device'"'"'s own SSH host keys on first boot\nBefore=ssh.service\nConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key\n\n[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n\n[Install]\nWantedBy=multi-user.target\n" >"$1/etc/systemd/system/sweep-ssh-hostkeys.service" && chroot "$1" systemctl enable sweep-ssh-hostkeys.service' \
  --customize-hook="rm -f \"\$1/tmp/install.sh\" \"\$1/tmp/admin.pub\" \"\$1/tmp/$name\"" \
  bookworm "$out" "$mirror"
echo "build-rootfs.sh: wrote $out"
