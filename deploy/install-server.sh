#!/usr/bin/env bash
# Installs (or upgrades) the Sweep access server from the server bundle
# (npm run bundle:server -> dist/sweep-server-linux-x64.tar.gz) on a Debian-like host with systemd.
# Run as root.
#
# Layout:  /opt/sweep-server                 the bundle (root-owned, read-only to the service): bin/node, dist/, node_modules, server/web/dist
#          /etc/sweep-server/server.env      where it listens (SWEEP_SERVER_HOST, SWEEP_SERVER_PORT)
#          /var/lib/sweep-server             the SQLite database and the server key (0700 sweep-server)
#          /etc/systemd/system/sweep-server.service
#          /usr/local/bin/sweep-server       `sweep server …` on this host's data, as the service's user
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: install-server.sh [--bundle FILE] [--host ADDR] [--port N] [--no-start]
  --bundle FILE   the server bundle (default: sweep-server-linux-x64.tar.gz next to this script, in its parent or in the current directory)
  --host ADDR     address to listen on when /etc/sweep-server/server.env does not exist yet (default 127.0.0.1: behind a TLS proxy)
  --port N        port, likewise (default 8443)
  --no-start      install and enable, but do not (re)start the service
USAGE
}

bundle=""
host="127.0.0.1"
port="8443"
start=1
while (($#)); do
  case "$1" in
    --bundle) bundle="${2:?--bundle needs a file}"; shift 2 ;;
    --host) host="${2:?--host needs an address}"; shift 2 ;;
    --port) port="${2:?--port needs a number}"; shift 2 ;;
    --no-start) start=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install-server.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

die() { echo "install-server.sh: $*" >&2; exit 1; }
say() { echo "install-server.sh: $*"; }

[[ "$(id -u)" -eq 0 ]] || die "run as root (sudo $0 $*)"
[[ "$(uname -m)" == "x86_64" ]] || die "this bundle is for x86_64; this machine is $(uname -m)"
if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then die "--port: \"$port\" is not a port (1-65535)"; fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "$bundle" ]]; then
  for candidate in "$here/sweep-server-linux-x64.tar.gz" "$here/../sweep-server-linux-x64.tar.gz" "$PWD/sweep-server-linux-x64.tar.gz"; do
    if [[ -f "$candidate" ]]; then bundle="$candidate"; break; fi
  done
fi
[[ -n "$bundle" && -f "$bundle" ]] || die "no bundle found; pass --bundle sweep-server-linux-x64.tar.gz"

# 1. The service user: no login, no home outside its state directory.
if ! id sweep-server >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/sweep-server --no-create-home --shell /usr/sbin/nologin sweep-server
  say "created user sweep-server"
fi

# 2. The bundle, swapped in whole so an interrupted upgrade leaves the old one working.
tmp="$(mktemp -d /opt/.sweep-server-install.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$bundle" -C "$tmp" --no-same-owner
[[ -x "$tmp/sweep-server/bin/node" && -f "$tmp/sweep-server/dist/sweep.mjs" && -f "$tmp/sweep-server/server/web/dist/index.html" ]] \
  || die "$bundle is not a Sweep server bundle (no sweep-server/bin/node, dist/sweep.mjs, server/web/dist/index.html)"
chown -R root:root "$tmp/sweep-server"
chmod -R u=rwX,go=rX "$tmp/sweep-server"
if [[ -d /opt/sweep-server ]]; then
  rm -rf /opt/sweep-server.old
  mv /opt/sweep-server /opt/sweep-server.old
fi
mv "$tmp/sweep-server" /opt/sweep-server
rm -rf /opt/sweep-server.old
sync
say "installed $(/opt/sweep-server/bin/node /opt/sweep-server/dist/sweep.mjs --version 2>/dev/null || echo '(version unknown)') in /opt/sweep-server"

# 3. State and settings. An existing server.env is never overwritten.
install -d -m 0700 -o sweep-server -g sweep-server /var/lib/sweep-server
install -d -m 0755 /etc/sweep-server
if [[ ! -f /etc/sweep-server/server.env ]]; then
  printf '# Where the access server listens (sweep-server.service). Behind a TLS proxy keep 127.0.0.1.\nSWEEP_SERVER_HOST=%s\nSWEEP_SERVER_PORT=%s\n' "$host" "$port" >/etc/sweep-server/server.env
  chmod 0644 /etc/sweep-server/server.env
  say "wrote /etc/sweep-server/server.env (listen on $host:$port)"
fi

# 4. The command: `sweep-server account add …` = `sweep server account add … --data /var/lib/sweep-server`,
#    run as sweep-server so the database stays the service's.
cat >/usr/local/bin/sweep-server <<'SH'
#!/bin/sh
# sweep server commands on this host's access server data (/var/lib/sweep-server).
set -eu
if [ "$(id -u)" = 0 ]; then
  exec runuser -u sweep-server -- /opt/sweep-server/bin/node /opt/sweep-server/dist/sweep.mjs server "$@" --data /var/lib/sweep-server
fi
exec /opt/sweep-server/bin/node /opt/sweep-server/dist/sweep.mjs server "$@" --data /var/lib/sweep-server
SH
chmod 0755 /usr/local/bin/sweep-server

# 5. The unit.
install -m 0644 /opt/sweep-server/deploy/sweep-server.service /etc/systemd/system/sweep-server.service
systemctl daemon-reload
systemctl enable sweep-server.service >/dev/null 2>&1 || systemctl enable sweep-server.service
if ((start == 1)); then
  systemctl restart sweep-server.service
  say "sweep-server.service restarted (journalctl -u sweep-server -f)"
fi
say "next: sudo sweep-server pubkey; sudo sweep-server account add NAME (README step 4)"
