"""Stacks as tables and flame graphs (lesson 10).

A BPF_STACK_TRACE map holds stacks by id: the addresses a frame-pointer walk
found, the innermost first. :func:`stack_frames` turns one id into names (the
kernel's from /proc/kallsyms, a process's from its own memory map and the
ELF symbols of what it maps, by BCC); :func:`stack_dataframe` does it for
every key of a map of counts; :func:`fold` makes the "folded" lines flame
graph tools read (``main;lk_stages;lk_compress 35``), and :func:`flame_graph`
draws them with matplotlib: one box per function on a stack, as wide as the
samples it was on, its callers below it.

    df = labkit.stack_dataframe(prog, "counts", pid=child.pid)
    labkit.flame_graph(labkit.fold(df))

A process's symbols are read from its memory map: name its stacks while it is
alive (after it exits every frame is "[unknown]").
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import pandas as pd

from labkit._errors import ArgumentError
from labkit.programs.compile import Program
from labkit.views.tables import map_dataframe

__all__ = ["KERNEL_ADDRESS", "UNKNOWN", "flame_graph", "fold", "stack_addresses", "stack_dataframe", "stack_error",
           "stack_frames"]

#: a frame whose address no symbol covers
UNKNOWN = "[unknown]"
#: addresses at or above this are the kernel's (x86_64 and arm64 alike: the upper half)
KERNEL_ADDRESS = 1 << 63
_ERRNO = {14: "EFAULT: no stack of that kind at that moment (a user stack of a kernel thread, a kernel stack "
              "taken while the CPU ran user code)",
          17: "EEXIST: another stack had the same hash, and BPF_F_REUSE_STACKID was not given",
          12: "ENOMEM: the stack map is full"}


def stack_error(stack_id: int) -> str:
    """What a negative stack id says (bpf_get_stackid returns -errno)."""
    return _ERRNO.get(-stack_id, f"error {stack_id}")


def _name(bpf, addr: int, pid: int | None, modules: bool) -> str:
    if addr >= KERNEL_ADDRESS:
        name = bpf.ksym(addr, show_module=modules)
    else:
        name = bpf.sym(addr, pid if pid is not None else -1, show_module=modules)
    name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
    return UNKNOWN if name.startswith("[unknown]") else name


def stack_frames(program: Program, stacks: str, stack_id: int, pid: int | None = None, *,
                 modules: bool = False) -> list[str]:
    """The names on stack ``stack_id`` of the map ``stacks``, the outermost first
    (``main`` before what it called). Kernel addresses are named from kallsyms,
    others in the memory map of process ``pid``; ``modules`` adds the file
    (``main [lk_busy]``). A negative id (bpf_get_stackid failed) or one the map
    no longer holds gives []."""
    if not isinstance(program, Program):
        raise ArgumentError(f"stack_frames needs a Program (prog = lab.load(...)), got {type(program).__name__}")
    if not program.has_table(stacks):
        raise ArgumentError(f"{program.name} has no map called {stacks!r}: name its BPF_STACK_TRACE")
    if isinstance(stack_id, bool) or not isinstance(stack_id, int):
        raise ArgumentError(f"stack_id is what get_stackid() returned, an int, got {stack_id!r}")
    if stack_id < 0:
        return []
    try:
        addrs = list(program[stacks].walk(stack_id))
    except KeyError:
        return []
    return [_name(program.bpf, a, pid, modules) for a in reversed(addrs)]


def stack_addresses(program: Program, stacks: str, stack_id: int) -> list[int]:
    """The raw addresses of stack ``stack_id``, innermost first ([] when there is none)."""
    if stack_id < 0:
        return []
    try:
        return [int(a) for a in program[stacks].walk(stack_id)]
    except KeyError:
        return []


def _int32(v: int) -> int:
    """A stack id read from a u32 or u64 key: bpf_get_stackid's int, negative errors included."""
    v = int(v) & 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def stack_dataframe(program: Program, counts: str, stacks: str = "stacks", pid: int | None = None, *,
                    user: str = "user_stack_id", kernel: str = "kernel_stack_id", modules: bool = False) -> pd.DataFrame:
    """A map of counts keyed by stack ids, named: one row per key with its
    ``value`` and, for each stack id column present (``user``, ``kernel``, or a
    plain int key, which counts as a user stack), that stack's frames, the
    outermost first, in ``user frames`` / ``kernel frames``; sorted by value.
    ``pid``: the process whose memory map names user frames."""
    df = map_dataframe(program, counts)
    if df.empty:
        return df.assign(**{"user frames": [], "kernel frames": []})
    if "key" in df.columns and user not in df.columns:
        df = df.rename(columns={"key": user})
    for col, out in ((user, "user frames"), (kernel, "kernel frames")):
        if col in df.columns:
            df[col] = [_int32(v) for v in df[col]]
            df[out] = [stack_frames(program, stacks, int(s), pid, modules=modules) for s in df[col]]
    return df.sort_values("value", ascending=False, ignore_index=True)


def fold(df: pd.DataFrame, frames: str | Iterable[str] = ("kernel frames", "user frames"), value: str = "value",
         *, missing: str = "[no stack]") -> pd.Series:
    """Folded stacks: ``"main;lk_stages;lk_compress;lk_mix" -> samples``, the
    outermost frame first, summed over equal stacks and sorted by count.
    ``frames``: the column(s) of frames to join (by default the user stack with
    the kernel stack above it, as the CPU ran them: user code, then the kernel it
    called); a row with no frames at all is ``missing``."""
    if not isinstance(df, pd.DataFrame):
        raise ArgumentError(f"fold needs a table of stacks (labkit.stack_dataframe(...)), got {type(df).__name__}")
    cols = [frames] if isinstance(frames, str) and frames in df.columns else \
        [c for c in ([] if isinstance(frames, str) else frames) if c in df.columns]
    if not cols:
        raise ArgumentError(f"fold needs a column of frames ({frames!r}); the table has "
                            f"{', '.join(map(str, df.columns)) or 'no columns'}: make it with labkit.stack_dataframe()")
    order = [c for c in ("user frames", "kernel frames") if c in cols] + [c for c in cols if c not in
                                                                        ("user frames", "kernel frames")]
    out: dict[str, int] = {}
    for _, row in df.iterrows():
        names = [f for c in order for f in (row[c] or [])]
        key = ";".join(names) if names else missing
        out[key] = out.get(key, 0) + int(row[value])
    return pd.Series(out, name="samples", dtype="int64").sort_values(ascending=False)


def _tree(folded: pd.Series) -> dict:
    root: dict = {"n": 0, "kids": {}}
    for line, n in folded.items():
        node = root
        node["n"] += int(n)
        for name in str(line).split(";"):
            node = node["kids"].setdefault(name, {"n": 0, "kids": {}})
            node["n"] += int(n)
    return root


def _color(name: str) -> tuple[float, float, float]:
    """A warm colour, the same for the same name (flame graphs' usual palette)."""
    h = hashlib.blake2s(name.encode(), digest_size=2).digest()
    return 0.9 + h[0] / 2550, 0.35 + h[1] / 500, 0.15


def flame_graph(folded: pd.Series, ax=None, *, title: str = "", unit: str = "samples", min_width: float = 0.0):
    """Draw folded stacks as a flame graph: the outermost frames at the bottom,
    each function a box as wide as the share of ``unit`` it was on the stack
    for, what it called stacked on it (sorted by name, left to right; the x
    axis is not time). Boxes narrower than ``min_width`` (a fraction) are
    left out. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt   # lazy: matplotlib is heavy and only views draw

    if not isinstance(folded, pd.Series):
        raise ArgumentError(f"flame_graph draws folded stacks, a pandas Series of counts by 'a;b;c' "
                            f"(labkit.fold(df)), got {type(folded).__name__}")
    tree = _tree(folded)
    total = tree["n"]
    if ax is None:
        depth = max((str(k).count(";") + 1 for k in folded.index), default=1)
        _, ax = plt.subplots(figsize=(9, 0.32 * depth + 0.9))
    ax.clear()
    levels = 0

    def draw(node: dict, x: float, level: int) -> None:
        nonlocal levels
        for name in sorted(node["kids"]):
            kid = node["kids"][name]
            w = kid["n"] / total if total else 0
            if w >= min_width and w > 0:
                levels = max(levels, level + 1)
                ax.barh(level, w, left=x, height=0.92, color=_color(name), edgecolor="white", linewidth=0.5)
                label = f"{name} ({kid['n']:,})"
                room = int(w * 110)          # about the characters a box of that width holds at this size
                if room >= 4:
                    ax.text(x + 0.003, level, label if len(label) <= room else label[:room - 1] + "…",
                            va="center", ha="left", fontsize=7, clip_on=True)
                draw(kid, x, level + 1)
            x += w

    draw(tree, 0.0, 0)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.5, max(levels, 1) - 0.5)
    ax.set_yticks([])
    ax.set_xlabel(f"share of {total:,} {unit} (boxes sorted by name: the x axis is not time)")
    if title:
        ax.set_title(title)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return ax.figure
