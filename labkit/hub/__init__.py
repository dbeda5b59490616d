"""The class server: JupyterHub on one host, every student's JupyterLab in their own VM.

``./lab hub`` (scripts/hub.sh) installs what it needs, builds the VM image with
the stock-kernel builder, and runs JupyterHub with scripts/jupyterhub_config.py.
The spawner (``spawner.LabVMSpawner``) starts one qemu VM per student; ``vm``
holds the VM's command line and disks, ``limits`` its cgroup limits,
``exchange`` nbgrader's exchange seen from each VM, and scripts/hub-guest.sh
what runs inside it.
"""

__all__ = []
