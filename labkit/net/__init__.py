"""Networks: the sandbox students send packets in, and XDP on its interfaces.

    netns.py      named network namespaces: list, create, enter (off the event loop)
    subnets.py    a free /30 (or larger) from 198.18.0.0/15 for each sandbox
    records.py    sandbox names, state files under /run/labkit, leftovers' owners
    sandbox.py    Sandbox: two namespaces joined by a veth pair (library only)
    traffic.py    ping and UDP between a sandbox's namespaces, and their results
    xdp/          XDP: bpf_link attach (link.py), netlink queries and records
                  (netlink.py), the attach rules and XdpAttachment (attach.py),
                  exact counters (counters.py)
    interfaces.py the interfaces table a student picks from (XDP state per interface)
    leftovers.py  what dead owners left (sandboxes, netlink XDP), found and removed
    guards.py     what an interface carries that the lab stands on (default route,
                  JupyterLab, SSH): the refusal before XDP (or TC) goes there
"""

__all__ = []  # each module is imported by what it names; labkit/__init__.py exports the public API
