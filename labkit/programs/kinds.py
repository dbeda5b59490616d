"""What kind of program a BPF function is, and whether an attach call fits it.

A function's kind is decided from what the program itself says, in this order:

1. BCC's name conventions (``tracepoint__cat__event``, ``kprobe__fn``, ...,
   :data:`labkit.programs.probes.AUTOLOAD_PREFIXES`; ``TRACEPOINT_PROBE(...)``
   and its siblings expand to such names);
2. the snippet header's ``// hook:`` line (every file in ``bpf_snippets/`` has
   one, and C text may carry the same);
3. the function's context type: ``struct xdp_md *`` is XDP, ``struct pt_regs *``
   a kprobe, ``struct __sk_buff *`` TC, a socket filter or cgroup_skb, ``struct
   bpf_sock_addr *`` a cgroup connect4 program, a tracepoint's
   argument struct (``struct sys_enter_args *``, ``struct trace_event_raw_*``)
   a tracepoint.

When none of them says (``void *ctx`` in C text without a header), every attach
call is allowed. Which kinds each attach call takes is said by its hook kind
(labkit.hooks): a mismatch is a :class:`ProgramKindError` that names both the
program's kind and the call's need, raised before anything is attached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from labkit.programs.probes import AUTOLOAD_PREFIXES

__all__ = [
    "Kind",
    "article",
    "context_kind",
    "defined_functions",
    "header_hook",
    "header_kind",
    "kind_of",
    "name_kind",
]


@dataclass(frozen=True)
class Kind:
    """A function's kind (``"tracepoint"``, ``"kprobe"``, ``"xdp"``, ...) and
    the evidence, as a phrase: ``its header says: hook: tracepoint ...``."""

    kind: str
    because: str


# what each kind is called in a sentence (article())
_ARTICLE_NAME = {
    "tracepoint": "a tracepoint",
    "raw_tracepoint": "a raw tracepoint",
    "kprobe": "a kprobe",
    "kretprobe": "a kretprobe",
    "kfunc": "a kfunc (fentry)",
    "kretfunc": "a kretfunc (fexit)",
    "lsm": "an LSM",
    "xdp": "an XDP",
    "skb": "a TC or socket-filter",
    "perf_event": "a perf-event",
    "uprobe": "a uprobe",
    "cgroup_skb": "a cgroup_skb",
    "sock_addr": "a cgroup sock_addr (connect4)",
}

# ------------------------------------------------------------------ 1. names
# BCC's macros that define a function named by convention (bcc/src/cc/export/helpers.h)
_PROBE_MACRO = re.compile(
    r"^[ \t]*(?P<macro>TRACEPOINT_PROBE|RAW_TRACEPOINT_PROBE|KFUNC_PROBE|KRETFUNC_PROBE|LSM_PROBE)"
    r"\s*\(\s*(?P<a>\w+)(?:\s*,\s*(?P<b>\w+))?", re.M)
_MACRO_PREFIX = {"TRACEPOINT_PROBE": "tracepoint__", "RAW_TRACEPOINT_PROBE": "raw_tracepoint__",
                 "KFUNC_PROBE": "kfunc__", "KRETFUNC_PROBE": "kretfunc__", "LSM_PROBE": "lsm__"}
# a function definition at the start of a line: `int lk_x(struct xdp_md *ctx) {`
_FUNC_DEF = re.compile(r"^(?P<head>[A-Za-z_][\w \t\*]*?)\b(?P<name>[A-Za-z_]\w*)\s*\([^;{}()]*\)\s*\{",
                       re.M)
_NOT_FUNCTIONS = {"if", "for", "while", "switch", "return", "sizeof"}


def name_kind(fn: str) -> Kind | None:
    """The kind BCC's naming convention gives ``fn`` (``tracepoint__sched__x``: a tracepoint)."""
    for prefix, kind in AUTOLOAD_PREFIXES:
        if fn.startswith(prefix):
            return Kind(kind, f"its function's name says so: {fn}")
    return None


def defined_functions(source: str) -> list[str]:
    """The BPF programs C text defines, as BCC would name them: every
    non-static function, and the functions BCC's probe macros expand to
    (``TRACEPOINT_PROBE(sched, x)`` is ``tracepoint__sched__x``)."""
    text = _strip_comments(source)
    found: list[tuple[int, str]] = []
    for m in _PROBE_MACRO.finditer(text):
        prefix = _MACRO_PREFIX[m["macro"]]
        name = f"{prefix}{m['a']}__{m['b']}" if m["macro"] == "TRACEPOINT_PROBE" and m["b"] else f"{prefix}{m['a']}"
        found.append((m.start(), name))
    for m in _FUNC_DEF.finditer(text):
        head = m["head"].split()
        if m["name"] in _NOT_FUNCTIONS or "static" in head:
            continue
        found.append((m.start(), m["name"]))
    return [name for _, name in sorted(found)]


# ----------------------------------------------------------------- 2. header
_HOOK_LINE = re.compile(r"^//\s*hook:\s*(?P<hook>.+?)\s*$")
_HEADER_KINDS = (  # first match wins: "raw tracepoint" before "tracepoint", "kretprobe" before "kprobe"
    (re.compile(r"^raw[ _]tracepoint", re.I), "raw_tracepoint"),
    (re.compile(r"^tracepoint", re.I), "tracepoint"),
    (re.compile(r"^kretprobe", re.I), "kretprobe"),
    (re.compile(r"^kprobe", re.I), "kprobe"),
    (re.compile(r"^uprobe|^uretprobe", re.I), "uprobe"),
    (re.compile(r"^usdt", re.I), "usdt"),
    (re.compile(r"^xdp", re.I), "xdp"),
    (re.compile(r"^(tc|socket|sk_buff|cls|sched_cls)\b", re.I), "skb"),
    (re.compile(r"^cgroup[ _/]?skb", re.I), "cgroup_skb"),
    (re.compile(r"^(cgroup[ _/]?connect4|cgroup[ _/]?sock_addr|connect4)", re.I), "sock_addr"),
    (re.compile(r"^(kfunc|fentry)", re.I), "kfunc"),
    (re.compile(r"^(kretfunc|fexit)", re.I), "kretfunc"),
    (re.compile(r"^lsm", re.I), "lsm"),
    (re.compile(r"^perf[ _]event", re.I), "perf_event"),
)


def header_hook(source: str) -> str | None:
    """The first line of the ``// hook:`` header in the comments that open the
    C text, as written (an unclosed parenthesis that continues on the next line
    left out), or None."""
    for line in source.splitlines():
        s = line.strip()
        if not s or s.startswith(("/*", "*")):
            continue
        if not s.startswith("//"):
            return None  # the header ends where the code begins
        m = _HOOK_LINE.match(s)
        if m:
            return _first_clause(m["hook"])
    return None


def _first_clause(text: str) -> str:
    """``text`` up to its first ``;`` or ``,`` outside parentheses, without a
    parenthesis left open (the header goes on in the next comment line)."""
    depth = 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch in ";," and depth == 0:
            text = text[:i]
            break
    if text.count("(") > text.count(")"):
        text = text[: text.rfind("(")]
    return text.strip()


def header_kind(source: str) -> Kind | None:
    """The kind the header's ``// hook:`` line names, or None (no header, or a hook labkit does not know)."""
    hook = header_hook(source)
    if hook is None:
        return None
    for pattern, kind in _HEADER_KINDS:
        if pattern.match(hook):
            return Kind(kind, f"its header says: hook: {hook}")
    return None


# --------------------------------------------------------------- 3. context
_CONTEXTS = (  # (pattern on the first parameter's type, kind); first match wins
    (re.compile(r"^struct\s+xdp_md$"), "xdp"),
    (re.compile(r"^struct\s+pt_regs$"), "kprobe"),
    (re.compile(r"^struct\s+__sk_buff$"), "skb"),
    (re.compile(r"^struct\s+bpf_raw_tracepoint_args$"), "raw_tracepoint"),
    (re.compile(r"^struct\s+bpf_perf_event_data$"), "perf_event"),
    (re.compile(r"^struct\s+bpf_sock_addr$"), "sock_addr"),
    (re.compile(r"^struct\s+(trace_event_raw_\w+|tracepoint__\w+|\w+_args)$"), "tracepoint"),
)


def context_kind(source: str, fn: str) -> Kind | None:
    """The kind ``fn``'s first parameter (its context pointer) gives it in the C text, or None."""
    m = re.search(rf"\b{re.escape(fn)}\s*\(\s*(?:const\s+)?(?P<type>(?:struct\s+)?\w+)\s*\*", _strip_comments(source))
    if not m:
        return None
    ctype = " ".join(m["type"].split())
    for pattern, kind in _CONTEXTS:
        if pattern.match(ctype):
            return Kind(kind, f"its function {fn} takes {ctype} *")
    return None


# ------------------------------------------------------------------ deciding
def kind_of(source: str, fn: str | None, functions: Sequence[str] = ()) -> Kind | None:
    """The kind of function ``fn`` (None: the only one of ``functions``) in
    ``source``: by its name, else by the header, else by its context type.
    None when nothing says (then any attach is allowed)."""
    if fn is None and len(functions) == 1:
        fn = functions[0]
    if fn is not None:
        by_name = name_kind(fn)
        if by_name is not None:
            return by_name
    by_header = header_kind(source)
    if by_header is not None or fn is None:
        return by_header
    return context_kind(source, fn)


def article(kind: str) -> str:
    """A kind as said in a sentence: ``an XDP``, ``a tracepoint``."""
    return _ARTICLE_NAME.get(kind, f"a {kind}")


def _strip_comments(source: str) -> str:
    """C text without its comments (line structure kept), so a commented-out function is not one."""
    no_block = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), source, flags=re.S)
    return re.sub(r"//[^\n]*", "", no_block)
