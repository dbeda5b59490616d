#!/bin/bash
# Installs labkit.service (the lab as a systemd service: `./lab start`) and the
# `labkit-url` command, (re)starts the service and waits for its URL.
#
# One script for both students' VMs, called after scripts/setup.sh by
#   - the Vagrantfile (provisioner "labkit-service"), and
#   - lima/labkit.yaml (its system provisioning script).
#
#   install-service.sh LISTEN HOST_PORT GUEST_DIR GUEST_PORT CAPS_USER [LATER]
#
#   LISTEN      JupyterLab's listen address inside the VM (start-jupyter.sh --ip):
#               127.0.0.1, or "default-route" (VirtualBox's NAT address)
#   HOST_PORT   the port on the host's 127.0.0.1 that is forwarded to GUEST_PORT;
#               the printed URL is http://127.0.0.1:HOST_PORT/lab?token=...
#   GUEST_DIR   the repository inside the VM (rsynced by Vagrant, mounted by Lima)
#   GUEST_PORT  JupyterLab's port inside the VM
#   CAPS_USER   the VM's user whose capability-only kernel `labkit-caps` runs
#               (vagrant on Vagrant, the Lima user on Lima)
#   LATER       the host command that prints the URL again, for the final message
#               (default: sudo labkit-url)
set -eu
if [ $# -lt 5 ]; then
  echo "usage: $0 LISTEN HOST_PORT GUEST_DIR GUEST_PORT CAPS_USER [LATER]" >&2
  exit 2
fi
listen="$1"; host_port="$2"; guest_dir="$3"; guest_port="$4"; caps_user="$5"
later="${6:-sudo labkit-url}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-service.sh must run as root (it writes /etc/systemd/system)" >&2
  exit 1
fi
if [ ! -x "$guest_dir/lab" ]; then
  echo "install-service.sh: $guest_dir/lab is missing: GUEST_DIR must be the labkit repository" >&2
  exit 1
fi
if ! id -u "$caps_user" >/dev/null 2>&1; then
  echo "install-service.sh: no user '$caps_user' in this VM (CAPS_USER)" >&2
  exit 1
fi
install -d -m 0755 /etc/labkit
cat > /etc/labkit/labkit.env <<EOF
# written by scripts/install-service.sh (re-provisioning rewrites it)
LABKIT_LISTEN=$listen
LABKIT_PORT=$guest_port
LABKIT_HOST_PORT=$host_port
EOF
cat > /etc/systemd/system/labkit.service <<EOF
[Unit]
Description=labkit JupyterLab (./lab start)
Wants=network-online.target
After=network-online.target
RequiresMountsFor=$guest_dir

[Service]
Type=simple
EnvironmentFile=/etc/labkit/labkit.env
Environment=HOME=/root PYTHONUNBUFFERED=1
WorkingDirectory=$guest_dir
RuntimeDirectory=labkit
RuntimeDirectoryMode=0700
StateDirectory=labkit
StateDirectoryMode=0700
ExecStartPre=-/bin/sh -c 'exec $guest_dir/.venv/bin/python -m labkit lessons --root $guest_dir update'
ExecStart=/bin/bash $guest_dir/lab start --ip \${LABKIT_LISTEN} --port \${LABKIT_PORT} --public-url http://127.0.0.1:\${LABKIT_HOST_PORT} --token-file /var/lib/labkit/token --url-file /run/labkit/url --caps-user $caps_user
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
EOF
cat > /usr/local/bin/labkit-url <<'EOF'
#!/bin/sh
# Print the URL (with its token) of this VM's JupyterLab. Needs root: sudo labkit-url
if [ -r /run/labkit/url ]; then exec cat /run/labkit/url; fi
if [ "$(id -u)" -ne 0 ]; then echo "labkit-url: run it as root: sudo labkit-url" >&2; exit 1; fi
echo "labkit-url: JupyterLab is not up (yet); see: systemctl status labkit; journalctl -u labkit" >&2
exit 1
EOF
chmod 0755 /usr/local/bin/labkit-url
systemctl daemon-reload
systemctl enable labkit.service
rm -f /run/labkit/url
systemctl restart labkit.service
for _ in $(seq 1 120); do
  if [ -s /run/labkit/url ] && ss -Hltn "sport = :$guest_port" | grep -q .; then
    echo "labkit is up. Open this in your browser (later: $later):"
    echo "    $(cat /run/labkit/url)"
    exit 0
  fi
  sleep 1
done
echo "labkit.service did not come up; its log:" >&2
journalctl -u labkit.service -n 40 --no-pager >&2 || true
exit 1
