"""Views: live panels, controls that feed them, and static tables of what the kernel holds.

    display.py   showing objects in a notebook (once per cell), table HTML
    bins.py      counts per time bin, fixed memory (the plots' data)
    plot.py      the panels' matplotlib figure, drawn to PNG
    feeds.py     what a panel shows of an EventStream or an XdpAttachment
    panel.py     LivePanel, PanelSnapshot, live(), the panels in the registry
    controls.py  SyscallPicker, XdpControl
    firewall.py  FirewallControl: an LPM-trie blocklist edited while traffic runs
    tables.py    map_dataframe, read_trace_pipe
    stacks.py    stack maps named (stack_dataframe, stack_frames), folded, drawn as flame graphs
    cellmagic.py the %%bpf cell magic (registered by labkit itself, not re-exported here)
"""

from labkit.views.controls import SyscallPicker, XdpControl
from labkit.views.firewall import FirewallControl
from labkit.views.panel import LivePanel, PanelSnapshot, close_panels, live, live_panels
from labkit.views.stacks import flame_graph, fold, stack_dataframe, stack_frames
from labkit.views.tables import map_dataframe, read_trace_pipe

__all__ = [
    "FirewallControl",
    "LivePanel",
    "PanelSnapshot",
    "SyscallPicker",
    "XdpControl",
    "close_panels",
    "flame_graph",
    "fold",
    "live",
    "live_panels",
    "map_dataframe",
    "read_trace_pipe",
    "stack_dataframe",
    "stack_frames",
]
