"""Networks: the sandbox students send packets in, and the kernel state on its interfaces.

Namespaces, the sandbox built from them (and its records, so what a dead
owner left is found and removed), traffic inside it, what an interface carries
that the lab stands on (the guard every attach to an interface passes), and
XDP and TC as the network sees them: slots, netlink, records, counters.
Attaching a program to an interface is a hook kind (labkit.hooks.xdp,
labkit.hooks.tc); docs/ARCHITECTURE.md maps the files.
"""

__all__ = []  # each module is imported by what it names; labkit/__init__.py exports the public API
