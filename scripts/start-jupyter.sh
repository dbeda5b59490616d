#!/usr/bin/env bash
# Start JupyterLab on notebooks/ with the labkit kernel. Called by ./lab start.
#   --port N        port (default 8888)
#   --ip ADDR       listen address (default 127.0.0.1: loopback only)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT=8888
IP=127.0.0.1
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    --ip) IP="$2"; shift 2 ;;
    *) echo "start: unknown option '$1' (known: --port N, --ip ADDR)" >&2; exit 2 ;;
  esac
done
TOKEN="${LABKIT_TOKEN:-$("$ROOT/.venv/bin/python" -c 'import secrets; print(secrets.token_hex(24))')}"
echo "labkit: JupyterLab at http://$IP:$PORT/lab?token=$TOKEN"
# --allow-root: the kernel must load BPF programs, which needs root (or CAP_BPF,
# CAP_PERFMON, CAP_NET_ADMIN); the server is on loopback and requires the token.
exec "$ROOT/.venv/bin/jupyter" lab --no-browser --allow-root \
  --ServerApp.ip="$IP" --ServerApp.port="$PORT" --ServerApp.port_retries=0 \
  --IdentityProvider.token="$TOKEN" \
  --ServerApp.root_dir="$ROOT/notebooks" \
  --MultiKernelManager.default_kernel_name=labkit
