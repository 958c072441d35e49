#!/bin/bash -e
# pi-gen sub-stage (runs on the build host; on_chroot runs inside the image): installs the Sweep
# bundle and its systemd unit with deploy/install.sh, and makes sure the image has no usable password.
# Needs files/sweep-linux-arm64.tar.gz and files/install.sh (see deploy/image/README.md).

for f in sweep-linux-arm64.tar.gz install.sh; do
	if [ ! -f "files/${f}" ]; then
		echo "stage-sweep: files/${f} is missing (npm run bundle:arm64; copy dist/sweep-linux-arm64.tar.gz and deploy/install.sh here)" >&2
		exit 1
	fi
done

install -d -m 0700 "${ROOTFS_DIR}/tmp/sweep-install"
install -m 0644 files/sweep-linux-arm64.tar.gz "${ROOTFS_DIR}/tmp/sweep-install/"
install -m 0755 files/install.sh "${ROOTFS_DIR}/tmp/sweep-install/"

on_chroot <<EOF2
set -e
bash /tmp/sweep-install/install.sh --image --bundle /tmp/sweep-install/sweep-linux-arm64.tar.gz --profile "${SWEEP_PROFILE:-intercom}"
rm -rf /tmp/sweep-install
# No default password: lock the first user's and root's passwords; SSH (if enabled) takes keys only.
passwd -l "${FIRST_USER_NAME}"
passwd -l root
EOF2

if [ -d "${ROOTFS_DIR}/etc/ssh/sshd_config.d" ]; then
	printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n' >"${ROOTFS_DIR}/etc/ssh/sshd_config.d/50-sweep.conf"
fi
