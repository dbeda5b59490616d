#!/usr/bin/env bash
# Start JupyterLab on notebooks/ with the labkit kernel. Called by `./lab start`
# (as root, after scripts/setup.sh) and by the Vagrant VM's labkit.service.
#
#   --port N            port (default 8888; taken -> fail, never another port)
#   --ip ADDR           listen address (default 127.0.0.1: loopback only). The
#                       special value "default-route" means the IPv4 address of the
#                       interface carrying the default route: in the Vagrant VM on
#                       VirtualBox that is the NAT address, reachable only through
#                       VirtualBox's port forward to the host's 127.0.0.1. Wildcard
#                       addresses (0.0.0.0, ::, *, empty) are refused.
#   --public-url URL    base URL to print instead of http://ADDR:PORT (the VM prints
#                       the host side of the port forward)
#   --token-file PATH   keep the token in PATH (mode 0600; created when missing), so
#                       the URL stays the same across restarts
#   --url-file PATH     write the URL with the token to PATH (mode 0600) and print it
#                       without the token (for services: keeps it out of the journal)
#   --env PREFIX        Python environment whose JupyterLab runs (default: .venv;
#                       e.g. "$CONDA_PREFIX" for environment.yml users)
#   --caps-user USER    also install the kernel "labkit-caps": the kernel runs as
#                       USER with only CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH and
#                       CAP_NET_ADMIN instead of as root (see README)
#   --kernelspec-only   install the kernel spec(s), print where, and exit
#   --notebooks DIR     the directory JupyterLab serves (default: notebooks/)
#   --hub               run as a JupyterHub single-user server (jupyterhub-singleuser):
#                       inside a class server's VM (scripts/hub-guest.sh), with the
#                       JUPYTERHUB_* environment the hub's spawner gave; the hub's
#                       login replaces the token, and the Host check is the hub's
#   --instructor        keep nbgrader's instructor tools in JupyterLab (Create
#                       Assignment, Formgrader, Course List and the Nbgrader menu);
#                       by default a server is a student's, and they are off
#                       (scripts/jupyter-student/labconfig/page_config.json)
#
# Environment: LABKIT_TOKEN (use this token; at least 16 characters of
# [A-Za-z0-9_-]), LABKIT_KERNELS_DIR (where to install kernel specs; default
# PREFIX/share/jupyter/kernels).
#
# The token is required for every request. It is printed once (or written to
# --url-file) and handed to Jupyter through the environment (JUPYTER_TOKEN), never
# on the command line, where every local user could read it with `ps`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT=8888
IP=127.0.0.1
PUBLIC_URL=""
TOKEN_FILE=""
URL_FILE=""
PREFIX="$ROOT/.venv"
CAPS_USER=""
SPEC_ONLY=0
INSTRUCTOR=0
HUB=0
NOTEBOOKS="$ROOT/notebooks"
die() { echo "start: $*" >&2; exit 2; }
need() { [ $# -ge 2 ] || die "option $1 needs a value"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --port) need "$@"; PORT="$2"; shift 2 ;;
    --ip) need "$@"; IP="$2"; shift 2 ;;
    --public-url) need "$@"; PUBLIC_URL="${2%/}"; shift 2 ;;
    --token-file) need "$@"; TOKEN_FILE="$2"; shift 2 ;;
    --url-file) need "$@"; URL_FILE="$2"; shift 2 ;;
    --env) need "$@"; PREFIX="${2%/}"; shift 2 ;;
    --caps-user) need "$@"; CAPS_USER="$2"; shift 2 ;;
    --kernelspec-only) SPEC_ONLY=1; shift ;;
    --instructor) INSTRUCTOR=1; shift ;;
    --hub) HUB=1; shift ;;
    --notebooks) need "$@"; NOTEBOOKS="${2%/}"; shift 2 ;;
    *) die "unknown option '$1' (known: --port N, --ip ADDR, --public-url URL, --token-file PATH, --url-file PATH, --env PREFIX, --caps-user USER, --kernelspec-only, --instructor, --hub, --notebooks DIR)" ;;
  esac
done
PY="$PREFIX/bin/python"
[ -x "$PY" ] || die "no Python at $PY: run ./lab start (it creates .venv), or pass --env PREFIX"
case "$PORT" in ''|*[!0-9]*) die "--port wants a number, got '$PORT'" ;; esac

# ------------------------------------------------------------ kernel specs
KERNELS_DIR="${LABKIT_KERNELS_DIR:-$PREFIX/share/jupyter/kernels}"
if [ ! -f "$PREFIX/share/jupyter/kernels/labkit/kernel.json" ] && [ "$PREFIX" != "$ROOT/.venv" ]; then
  # scripts/setup.sh installs this for .venv; another environment (conda) gets it here
  "$PY" -m ipykernel install --prefix "$PREFIX" --name labkit \
    --display-name "labkit (eBPF, Python 3)" >/dev/null
fi

if [ -n "$CAPS_USER" ]; then
  # The "labkit-caps" kernel: Jupyter (root) launches it through setpriv, which
  # switches to CAPS_USER and keeps only the capabilities BPF lessons need, as
  # ambient capabilities so that they survive the exec of python. Measured on
  # kernel 6.18 (Debian 12): tracepoints + ring buffers need CAP_BPF, CAP_PERFMON
  # and CAP_DAC_READ_SEARCH (tracefs is mode 0700 and BCC reads the tracepoint ids
  # there); XDP needs CAP_BPF + CAP_NET_ADMIN. The bounding set is cut to the same
  # four and no_new_privs is set, so nothing in the kernel (not even sudo) can
  # get more. The server's token is removed from the kernel's environment.
  command -v setpriv >/dev/null || die "--caps-user needs setpriv (util-linux)"
  CAPS_UID="$(id -u "$CAPS_USER" 2>/dev/null)" || die "--caps-user: no user '$CAPS_USER'"
  [ "$CAPS_UID" -ne 0 ] || die "--caps-user must not be root (that is the plain 'labkit' kernel)"
  CAPS_GID="$(id -g "$CAPS_USER")"
  CAPS_NAME="$(id -un "$CAPS_USER")"
  CAPS_HOME="$(getent passwd "$CAPS_UID" | cut -d: -f6)"
  # a home the user owns, or a fresh private one per kernel start (never a shared,
  # predictable path: IPython runs startup files from $HOME)
  if [ -z "$CAPS_HOME" ] || [ ! -d "$CAPS_HOME" ] || [ "$(stat -c %u "$CAPS_HOME")" != "$CAPS_UID" ]; then
    CAPS_HOME=""
  fi
  SETPRIV="$(command -v setpriv)"
  LABKIT_PY="$PY" LABKIT_SETPRIV="$SETPRIV" LABKIT_UID="$CAPS_UID" LABKIT_GID="$CAPS_GID" \
  LABKIT_NAME="$CAPS_NAME" LABKIT_HOME="$CAPS_HOME" LABKIT_DIR="$KERNELS_DIR/labkit-caps" \
  "$PY" - <<'EOF'
import json, os
caps = "-all,+bpf,+perfmon,+dac_read_search,+net_admin"
e = os.environ
env = ["/usr/bin/env", "-u", "JUPYTER_TOKEN", "-u", "JUPYTER_TOKEN_FILE", "-u", "LABKIT_TOKEN",
       "USER=" + e["LABKIT_NAME"], "LOGNAME=" + e["LABKIT_NAME"]]
py = [e["LABKIT_PY"], "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
if e["LABKIT_HOME"]:
    tail = env + ["HOME=" + e["LABKIT_HOME"]] + py
else:
    tail = env + ["/bin/sh", "-c",
                  'HOME="$(mktemp -d -t labkit-caps-home.XXXXXX)" && export HOME && exec "$0" "$@"'] + py
spec = {
    "argv": [e["LABKIT_SETPRIV"], "--reuid=" + e["LABKIT_UID"], "--regid=" + e["LABKIT_GID"],
             "--init-groups", "--inh-caps=" + caps, "--ambient-caps=" + caps,
             "--bounding-set=" + caps, "--no-new-privs", "--"] + tail,
    "display_name": "labkit, capabilities only (as %s)" % e["LABKIT_NAME"],
    "language": "python",
    "interrupt_mode": "signal",
    "metadata": {"debugger": True,
                 "labkit": {"user": e["LABKIT_NAME"], "uid": int(e["LABKIT_UID"]),
                            "capabilities": ["CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH", "CAP_NET_ADMIN"]}},
}
d = e["LABKIT_DIR"]
os.makedirs(d, exist_ok=True)
tmp = os.path.join(d, "kernel.json.tmp")
with open(tmp, "w") as f:
    json.dump(spec, f, indent=1)
os.replace(tmp, os.path.join(d, "kernel.json"))
EOF
  echo "labkit: kernel 'labkit-caps' (runs as $CAPS_NAME with CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH, CAP_NET_ADMIN) in $KERNELS_DIR/labkit-caps"
fi
if [ "$SPEC_ONLY" -eq 1 ]; then
  exit 0
fi

# ----------------------------------------------------------------- address
if [ "$IP" = default-route ]; then
  dev="$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit }}')"
  [ -n "$dev" ] || { echo "start: --ip default-route: no IPv4 default route (yet)" >&2; exit 1; }
  IP="$(ip -4 -o addr show dev "$dev" scope global | awk '{split($4, a, "/"); print a[1]; exit}')"
  [ -n "$IP" ] || { echo "start: --ip default-route: $dev has no IPv4 address (yet)" >&2; exit 1; }
fi
case "$IP" in
  ''|'*'|0.0.0.0|::|'[::]'|0|::0) die "refusing to listen on every address ('$IP'): pass a single address; the default is 127.0.0.1" ;;
esac

# ------------------------------------------------------------------- token
if [ "$HUB" -eq 1 ]; then
  [ -n "${JUPYTERHUB_API_TOKEN:-}" ] || die "--hub needs the environment of a JupyterHub spawner (JUPYTERHUB_API_TOKEN is not set)"
  echo "labkit: single-user server for ${JUPYTERHUB_USER:-?} on $IP:$PORT under ${JUPYTERHUB_SERVICE_PREFIX:-/}"
elif [ -n "${LABKIT_TOKEN:-}" ]; then
  TOKEN="$LABKIT_TOKEN"
elif [ -n "$TOKEN_FILE" ] && [ -s "$TOKEN_FILE" ]; then
  TOKEN="$(tr -d '[:space:]' < "$TOKEN_FILE")"
else
  TOKEN="$("$PY" -c 'import secrets; print(secrets.token_hex(24))')"
  if [ -n "$TOKEN_FILE" ]; then
    mkdir -p "$(dirname "$TOKEN_FILE")"
    ( umask 077; printf '%s\n' "$TOKEN" > "$TOKEN_FILE" )
  fi
fi
if [ "$HUB" -eq 0 ]; then
  case "$TOKEN" in *[!A-Za-z0-9_-]*) die "the token may only contain A-Z a-z 0-9 _ -" ;; esac
  [ "${#TOKEN}" -ge 16 ] || die "the token is too short (at least 16 characters)"
  unset LABKIT_TOKEN JUPYTER_TOKEN_FILE
  export JUPYTER_TOKEN="$TOKEN"

  case "$IP" in *:*) HOSTPART="[$IP]" ;; *) HOSTPART="$IP" ;; esac
  BASE="${PUBLIC_URL:-http://$HOSTPART:$PORT}"
  if [ -n "$URL_FILE" ]; then
    mkdir -p "$(dirname "$URL_FILE")"
    ( umask 077; printf '%s/lab?token=%s\n' "$BASE" "$TOKEN" > "$URL_FILE" )
    echo "labkit: JupyterLab at $BASE/lab (listening on $HOSTPART:$PORT); the URL with its token is in $URL_FILE (root only)"
  else
    echo "labkit: JupyterLab at $BASE/lab?token=$TOKEN"
  fi
fi

# What crashed kernels of an earlier run left (their sandboxes, netlink XDP) goes
# before the lab starts; one line on stderr when there was any. Never stops a start.
"$PY" -m labkit cleanup --dead-owners || true

# --allow-root: Jupyter refuses to run as root without it. The server runs as
# root because the default 'labkit' kernel it starts must load BPF programs,
# attach them and create network namespaces, which needs root (or, for the
# 'labkit-caps' kernel, the capabilities above, which only root can hand out).
# That makes the server root-equivalent, so it is locked down:
#   - listens on one address (loopback by default), never on every address;
#   - the token is required on every request (allow_unauthenticated_access off),
#     and the login page may not swap it for a password;
#   - allow_remote_access off: requests whose Host header is not localhost /
#     127.0.0.1 are refused (DNS rebinding); no CORS (allow_origin empty);
#   - nothing phones home: no news feed, no update check, and the extension
#     manager is read-only (no pip installs from the browser). The server side
#     (news_url, check_for_updates_class) answers with nothing; the browser side
#     must not ask either: scripts/jupyterlab-settings/overrides.json sets the
#     defaults of the notification settings to fetchNews "false" (without it
#     JupyterLab greets every new user with "Would you like to get notified
#     about official Jupyter news?") and checkForUpdates false. It is the lab's
#     app_settings_dir, which holds only those defaults: a user can still change
#     them in the Settings Editor, and the server still fetches nothing;
#   - terminals stay on: students use them (they are root shells, like the kernel);
#   - labkit's own prebuilt extension (labkit/views/labextensions/labkit-bpf-cells):
#     a code cell whose first line is %%bpf is edited as C (highlighting, indentation).
# a student's server: nbgrader's instructor tools are off (JupyterLab reads
# labconfig/page_config.json from every directory of JUPYTER_CONFIG_PATH)
if [ "$INSTRUCTOR" -eq 0 ]; then
  export JUPYTER_CONFIG_PATH="$ROOT/scripts/jupyter-student${JUPYTER_CONFIG_PATH:+:$JUPYTER_CONFIG_PATH}"
fi
# under a hub: the hub's login guards every request (OAuth), and requests come
# through its proxy with the class server's own Host name
if [ "$HUB" -eq 1 ]; then
  SERVER=("$PREFIX/bin/jupyterhub-singleuser" --ServerApp.allow_remote_access=True)
else
  SERVER=("$PREFIX/bin/jupyter" lab --ServerApp.allow_remote_access=False)
fi
exec "${SERVER[@]}" --no-browser --allow-root \
  --ServerApp.ip="$IP" --ServerApp.port="$PORT" --ServerApp.port_retries=0 \
  --ServerApp.allow_origin='' --ServerApp.allow_origin_pat='' \
  --ServerApp.allow_unauthenticated_access=False \
  --ServerApp.disable_check_xsrf=False \
  --ServerApp.use_redirect_file=False \
  --ServerApp.terminals_enabled=True \
  --PasswordIdentityProvider.allow_password_change=False \
  --LabApp.news_url=None \
  --LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate \
  --LabApp.extension_manager=readonly \
  --LabApp.app_settings_dir="$ROOT/scripts/jupyterlab-settings" \
  --LabApp.extra_labextensions_path="$ROOT/labkit/views/labextensions" \
  --ServerApp.root_dir="$NOTEBOOKS" \
  --MultiKernelManager.default_kernel_name=labkit
