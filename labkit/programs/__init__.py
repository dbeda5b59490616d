"""Programs: C text in, a loaded BPF program out, and what it is.

Compiling (BCC, or clang for CO-RE objects loaded by libbpf) with what the
compiler and the verifier say mapped back to the lines as written; which
kind of program a function is; which hooks and privileges this kernel and
process have, probed rather than assumed. Where a program goes is its hook
kind's business (labkit.hooks); docs/ARCHITECTURE.md maps the files.
"""

from labkit.programs.compile import Program, compile_c, resolve_source

__all__ = ["Program", "compile_c", "resolve_source"]
