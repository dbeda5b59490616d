# JupyterHub configuration of labkit's class server, read by `./lab hub`
# (scripts/hub.sh), which sets the LABKIT_HUB_* variables below. See
# labkit/hub/spawner.py for the VMs, and the README's "Class server" section.
#
# A teacher overrides anything here in STATE/jupyterhub_config_local.py (loaded
# last, e.g. an LTI authenticator for their learning platform instead of
# NativeAuthenticator's sign-up and approval).
import os
from pathlib import Path

import nativeauthenticator

c = get_config()  # noqa: F821 (JupyterHub's config loader defines it)
env = os.environ
state = Path(env["LABKIT_HUB_STATE"])

# ------------------------------------------------------------------ network
# the public side: the proxy (default 127.0.0.1; a class server passes --ip)
c.JupyterHub.ip = env.get("LABKIT_HUB_IP", "127.0.0.1")
c.JupyterHub.port = int(env.get("LABKIT_HUB_PORT", "8000"))
# the hub's API, loopback only: the VMs reach it through qemu's guestfwd
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(env.get("LABKIT_HUB_API_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(env.get('LABKIT_HUB_PROXY_API_PORT', '8001'))}"
c.ConfigurableHTTPProxy.command = [env["LABKIT_HUB_PROXY"]]
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
# the proxy's token comes from the environment (CONFIGPROXY_AUTH_TOKEN, kept in
# STATE by hub.sh) so that a restarted hub finds the running proxy again

# --------------------------------------------------------------- the state
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
# VMs and the proxy outlive a restart of the hub: students keep working
c.JupyterHub.cleanup_servers = False
c.JupyterHub.cleanup_proxy = False

# ----------------------------------------------------------- who logs in
# NativeAuthenticator: students sign up, the teacher (an admin) approves them at
# /hub/authorize; passwords are stored hashed (bcrypt) in the hub's database
c.JupyterHub.authenticator_class = "native"
c.JupyterHub.template_paths = [str(Path(nativeauthenticator.__file__).parent / "templates")]
c.NativeAuthenticator.open_signup = env.get("LABKIT_HUB_OPEN_SIGNUP", "0") == "1"
c.NativeAuthenticator.minimum_password_length = 8
c.NativeAuthenticator.check_common_password = True
c.Authenticator.allow_all = True          # every approved user (NativeAuthenticator decides)
admins = {a for a in env.get("LABKIT_HUB_ADMINS", "").split(",") if a}
c.Authenticator.admin_users = admins
c.NativeAuthenticator.allowed_failed_logins = 5
c.NativeAuthenticator.seconds_before_next_try = 60

# -------------------------------------------------------------- the VMs
from labkit.hub.spawner import LabVMSpawner  # noqa: E402 (imported here: an import error shows its traceback)

c.JupyterHub.spawner_class = LabVMSpawner
c.LabVMSpawner.state_dir = str(state)
c.LabVMSpawner.image = env["LABKIT_HUB_IMAGE"]
c.LabVMSpawner.hub_api_port = c.JupyterHub.hub_port
c.LabVMSpawner.accel = env.get("LABKIT_HUB_ACCEL", "tcg")
c.LabVMSpawner.vm_mem_mb = int(env.get("LABKIT_HUB_MEM", "2048"))
c.LabVMSpawner.vm_cpus = int(env.get("LABKIT_HUB_CPUS", "1"))
c.LabVMSpawner.vm_cpu_quota = float(env.get("LABKIT_HUB_CPU_QUOTA", env.get("LABKIT_HUB_CPUS", "1")))
c.LabVMSpawner.home_size_mb = int(env.get("LABKIT_HUB_HOME_MB", "2048"))
c.LabVMSpawner.course_release = env.get("LABKIT_HUB_RELEASE", "")
c.Spawner.default_url = "/lab"
# a VM boots a kernel and then JupyterLab: under TCG that takes minutes
c.Spawner.start_timeout = int(env.get("LABKIT_HUB_START_TIMEOUT", "900"))
c.Spawner.http_timeout = int(env.get("LABKIT_HUB_START_TIMEOUT", "900"))
c.JupyterHub.init_spawners_timeout = 60

# ------------------------------------------------------ idle servers end
idle = int(env.get("LABKIT_HUB_IDLE_TIMEOUT", "3600"))
if idle > 0:
    c.JupyterHub.load_roles = [{
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }]
    c.JupyterHub.services = [{
        "name": "idle-culler",
        "command": [env.get("LABKIT_HUB_PYTHON", "python3"), "-m", "jupyterhub_idle_culler",
                    f"--timeout={idle}", f"--cull-every={max(30, min(300, idle // 4))}"],
    }]

local = state / "jupyterhub_config_local.py"
if local.is_file():
    exec(compile(local.read_text(), str(local), "exec"))  # noqa: S102 (the teacher's own overrides)
