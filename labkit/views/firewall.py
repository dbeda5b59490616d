"""``labkit.FirewallControl``: edit an XDP program's LPM-trie blocklist while traffic runs.

    x = lab.attach_xdp("xdp_fw_lpm", iface=sb.target_iface, netns=sb.target_ns)
    fw = labkit.FirewallControl(x)          # a prefix box, block/unblock buttons, the blocklist, a live panel
    fw.block("198.18.7.64/26"); fw.unblock("198.18.7.64/26"); fw.blocked()

The trie's keys are ``struct { u32 prefixlen; __be32 addr; }`` (prefix length
in bits, then the IPv4 network address in network byte order, as in the
packet); the values are counts the program adds to (the packets each prefix
dropped: a u32 in xdp_fw_lpm.c, whose comment says why not a u64). The live
panel (labkit.live) shows the program's exact counters: passes and drops per
protocol, per second.
"""

from __future__ import annotations

import ctypes
import html
import ipaddress
import struct

import pandas as pd

from labkit._errors import ArgumentError, ClosedError
from labkit.hooks.xdp import XdpAttachment
from labkit.views.display import table_html, widget_bundle
from labkit.views.panel import LivePanel

__all__ = ["FirewallControl"]

_LPM_TRIE = 11          # BPF_MAP_TYPE_LPM_TRIE
_KEY = struct.Struct("=I4s")


class FirewallControl:
    """A blocklist editor for ``attachment``'s LPM trie ``table`` (keys: prefix
    length in bits, IPv4 address in network byte order; values: drop counts,
    u32 or u64), with a live panel of its passes and drops.
    ``block``/``unblock`` do what the buttons do; ``blocked()`` is the table shown."""

    def __init__(self, attachment: XdpAttachment, *, table: str = "blocked", name: str = "firewall",
                 interval: float = 0.5):
        import ipywidgets as w  # lazy: ipywidgets is only needed in a notebook

        if not isinstance(attachment, XdpAttachment):
            raise ArgumentError("FirewallControl needs what lab.attach_xdp() returned (an XdpAttachment of a program "
                                f"with an LPM trie), got {type(attachment).__name__} {attachment!r:.60}")
        if not attachment.attached:
            raise ClosedError(f"FirewallControl needs an attached program; {attachment!r} is {attachment.state}")
        prog = attachment.program
        if not isinstance(table, str) or not prog.has_table(table):
            raise ArgumentError(f"{prog.name} has no map named {table!r}; declare it in the C code, e.g. "
                                "BPF_LPM_TRIE(blocked, struct lpm_v4, u32, 64)")
        self.table = prog[table]
        if getattr(self.table, "ttype", None) != _LPM_TRIE or ctypes.sizeof(self.table.Key) != _KEY.size:
            raise ArgumentError(f"map {table!r} of {prog.name} must be an LPM trie (BPF_LPM_TRIE) keyed by "
                                "struct { u32 prefixlen; __be32 addr; } (8 bytes)")
        self.attachment = attachment
        self.name = name
        self._prefix = w.Text(placeholder="e.g. 198.18.0.0/24", description="prefix")
        self._block_b = w.Button(description="block", icon="ban", button_style="danger")
        self._unblock_b = w.Button(description="unblock", icon="check")
        self._msg = w.HTML()
        self._list = w.HTML()
        self._block_b.on_click(lambda _b: self._safe(lambda: self.block(self._prefix.value)))
        self._unblock_b.on_click(lambda _b: self._safe(lambda: self.unblock(self._prefix.value)))
        self.panel = LivePanel(attachment, name=name, title=f"{name}: passes and drops", interval=interval)
        self.widget = w.VBox([w.HBox([self._prefix, self._block_b, self._unblock_b, self._msg]), self._list,
                              self.panel.widget])
        self.panel.shown_in(self.widget)
        self._show()
        self.panel.after_refresh.append(self._show_counts)   # the blocklist's drops, as live as the panel

    @staticmethod
    def _network(prefix: str) -> ipaddress.IPv4Network:
        try:
            return ipaddress.IPv4Network(str(prefix).strip(), strict=False)
        except ValueError as e:
            raise ArgumentError(f"{prefix!r} is not an IPv4 prefix like 198.18.7.64/26 ({e})") from None

    def _key(self, net: ipaddress.IPv4Network):
        key = self.table.Key()
        ctypes.memmove(ctypes.addressof(key), _KEY.pack(net.prefixlen, net.network_address.packed), _KEY.size)
        return key

    def block(self, prefix: str) -> ipaddress.IPv4Network:
        """Add ``prefix`` (e.g. "198.18.7.64/26") to the blocklist, its count at 0."""
        net = self._network(prefix)
        leaf = self.table.Leaf()
        self.table[self._key(net)] = leaf
        self._show(f"blocked {net}")
        return net

    def unblock(self, prefix: str) -> ipaddress.IPv4Network:
        """Remove ``prefix`` from the blocklist."""
        net = self._network(prefix)
        try:
            del self.table[self._key(net)]
        except KeyError:
            raise ArgumentError(f"{net} is not blocked (blocked: {', '.join(self.blocked().prefix) or 'nothing'})") \
                from None
        self._show(f"unblocked {net}")
        return net

    def blocked(self) -> pd.DataFrame:
        """The blocklist: one row per prefix with the packets it dropped, longest prefix first."""
        rows = []
        for k, v in self.table.items():
            plen, addr = _KEY.unpack(ctypes.string_at(ctypes.addressof(k), _KEY.size))
            drops = v.value if hasattr(v, "value") else int.from_bytes(bytes(v), "little")
            rows.append({"prefix": str(ipaddress.IPv4Network((addr, plen))), "prefixlen": plen, "drops": int(drops)})
        df = pd.DataFrame(rows, columns=["prefix", "prefixlen", "drops"])
        return df.sort_values(["prefixlen", "prefix"], ascending=[False, True]).reset_index(drop=True)

    def _show(self, note: str = "") -> None:
        if note:
            self._msg.value = html.escape(note)
        df = self.blocked()
        page = "<i>nothing blocked</i>" if df.empty else table_html(df)
        if self._list.value != page:
            self._list.value = page

    def _show_counts(self) -> None:
        if self.attachment.attached:        # a detached program's maps may be gone: keep what was shown
            self._show()

    def refresh(self) -> pd.DataFrame:
        """Show the blocklist's counts again; returns it."""
        self._show()
        return self.blocked()

    def close(self) -> None:
        self.panel.close()

    def _safe(self, fn) -> None:
        try:
            fn()
        except Exception as e:
            self._msg.value = f"<span style='color:#c33'>{html.escape(str(e))}</span>"

    def _repr_mimebundle_(self, **kw):
        return widget_bundle(self, **kw)

    def __repr__(self) -> str:
        return f"<labkit.FirewallControl {self.name}: {len(self.blocked())} prefixes blocked on {self.attachment.target}>"
