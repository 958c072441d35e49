#!/bin/bash -e
# pi-gen: start this stage from the previous stage's root filesystem. First, refuse to build an
# image nobody can log in to: the image has no password, so the installer's SSH key is the way in.
if [ -z "${PUBKEY_SSH_FIRST_USER:-}" ] || [ "${ENABLE_SSH:-0}" != 1 ]; then
	echo "stage-sweep: refusing to build an image nobody can log in to: set PUBKEY_SSH_FIRST_USER to your SSH public key (and ENABLE_SSH=1; deploy/image/config does)" >&2
	exit 1
fi
case "${PUBKEY_SSH_FIRST_USER}" in
	ssh-ed25519\ * | ssh-rsa\ * | ecdsa-sha2-*\ * | sk-ssh-ed25519@openssh.com\ * | sk-ecdsa-sha2-*\ *) ;;
	*)
		echo "stage-sweep: PUBKEY_SSH_FIRST_USER is not an SSH public key (ssh-ed25519 AAAA..., ssh-rsa ..., ecdsa-sha2-...)" >&2
		exit 1
		;;
esac
if [ ! -d "${ROOTFS_DIR}" ]; then
	copy_previous
fi
