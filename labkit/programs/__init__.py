"""Programs: C text in, a loaded BPF program out.

    compile.py     resolve a snippet name or C text, compile it with BCC (clang's
                   fd-2 output captured), map diagnostics and verifier logs back to
                   the snippet's own lines; Program (source, flags, BCC module)
    hooks.py       which hooks this kernel has (tracefs, tracepoints, kprobes,
                   syscall names and argument counts), probed, never assumed
    privileges.py  the capabilities each kind of program needs, checked first
    libbpf.py      libbpf.so.1 through ctypes (shared with net/xdp)
    core.py        CO-RE: clang -target bpf with vmlinux.h, libbpf-loaded
                   objects, their programs (bpf_links) and maps
    kinds.py       which kind a function is (BCC name, `// hook:` header, context
                   type), and whether an attach call fits it
"""

from labkit.programs.compile import Program, compile_c, resolve_source

__all__ = ["Program", "compile_c", "resolve_source"]
