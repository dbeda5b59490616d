"""A libbpf application: a BPF object and the C program in user space that loads it through its skeleton.

    app = build_app("app_opens")     # bpf_snippets/app_opens.bpf.c + bpf_snippets/apps/app_opens.c
    app.exe                          # the executable; app.skeleton: the header bpftool made
    p = app.start("--pid", 42, "--pin-dir", pins.path)   # a subprocess.Popen (text, stdin and stdout piped)

The way tools like libbpf-tools and bpftrace's own are built, three steps, each cached by content
(under labkit.programs.core.cache_dir()/apps):

1. clang compiles the BPF half against ``vmlinux.h`` (labkit.programs.core.compile_core: ``-target bpf``,
   ``-g`` for its BTF).
2. ``bpftool gen skeleton OBJ name NAME_bpf`` makes ``NAME.skel.h``: the object's bytes embedded in C,
   and a struct with a field per map, program and link, and one per section of globals
   (``skel->rodata->x``); ``NAME_bpf__open_opts()``, ``__load()``, ``__attach()``, ``__destroy()``.
3. clang compiles the user half with the skeleton and links it with libbpf (``-lbpf``).

Errors: an application that is not there is an ArgumentError naming the two files; what clang says
about either half is a CompileError (lines as written); a missing tool a NotSupportedError.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from labkit._errors import ArgumentError, CompileError, NotSupportedError
from labkit.programs.compile import SNIPPET_DIR, first_error
from labkit.programs.core import cache_dir, compile_core, tool, vmlinux_header

__all__ = ["APP_DIR", "App", "USER_FLAGS", "app_names", "build_app"]

#: where the user-space halves live (their BPF halves are snippets: bpf_snippets/<name>.bpf.c)
APP_DIR = SNIPPET_DIR / "apps"
#: how the user half is compiled and linked
USER_FLAGS = ["-O2", "-g", "-Wall", "-fno-color-diagnostics"]


def app_names() -> list[str]:
    """The applications there are: user halves in bpf_snippets/apps with a BPF half beside them."""
    try:
        return sorted(p.stem for p in APP_DIR.glob("*.c") if (SNIPPET_DIR / f"{p.stem}.bpf.c").exists())
    except OSError:
        return []


@dataclass(frozen=True)
class App:
    """A built application: ``name``, ``exe`` (the executable), ``skeleton`` (NAME.skel.h), ``bpf_object``."""

    name: str
    exe: Path
    skeleton: Path
    bpf_object: Path

    def start(self, *args, **popen) -> subprocess.Popen:
        """Start it with ``args`` (each made a string): a Popen with stdin and stdout piped, text mode;
        its stderr is piped too unless ``stderr=`` says otherwise. The caller ends it (closing its stdin
        tells app_opens to finish) and waits for it."""
        popen.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen([str(self.exe), *map(str, args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, bufsize=1, **popen)


def _sources(name: str) -> tuple[str, str]:
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise ArgumentError(f"build_app needs the name of an application (one of: {', '.join(app_names())}), "
                            f"got {name!r}")
    bpf, user = SNIPPET_DIR / f"{name}.bpf.c", APP_DIR / f"{name}.c"
    missing = [str(p.relative_to(SNIPPET_DIR.parent)) for p in (bpf, user) if not p.exists()]
    if missing:
        raise ArgumentError(f"no libbpf application {name!r}: {' and '.join(missing)} missing (an application is "
                            f"bpf_snippets/NAME.bpf.c and bpf_snippets/apps/NAME.c); there are: "
                            f"{', '.join(app_names()) or 'none'}")
    return bpf.read_text(), user.read_text()


def build_app(name: str) -> App:
    """Build the application ``name`` (or find it built): its BPF object, skeleton and executable."""
    bpf_text, user_text = _sources(name)
    obj = compile_core(bpf_text, f"{name}.bpf.c")
    header = vmlinux_header()
    key = hashlib.sha256("\0".join([name, obj.name, user_text, str(header), *USER_FLAGS]).encode()).hexdigest()[:24]
    out = cache_dir() / "apps" / key
    exe, skel = out / name, out / f"{name}.skel.h"
    if exe.exists() and skel.exists():
        return App(name, exe, skel, obj)
    out.parent.mkdir(exist_ok=True)
    bpftool, clang = tool("bpftool", "bpftool"), tool("clang", "clang")
    with tempfile.TemporaryDirectory(prefix=f"labkit-app-{name}-", dir=out.parent,
                                     ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        gen = subprocess.run([bpftool, "gen", "skeleton", str(obj), "name", f"{name}_bpf"],
                             capture_output=True, text=True, timeout=120)
        if gen.returncode != 0 or "__open_opts" not in gen.stdout:
            raise NotSupportedError(f"bpftool could not make the skeleton of {name}.bpf.c (bpftool gen skeleton, "
                                    f"bpftool 5.6 and later): {gen.stderr.strip()[-400:]}", feature="bpftool gen")
        (work / f"{name}.skel.h").write_text(gen.stdout)
        src = work / f"{name}.c"
        src.write_text(f'#line 1 "apps/{name}.c"\n{user_text}')
        cc = subprocess.run([clang, *USER_FLAGS, "-I", str(work), str(src), "-lbpf", "-o", str(work / name)],
                            capture_output=True, text=True, timeout=300)
        if cc.returncode != 0 or not (work / name).exists():
            diag = cc.stderr.replace(str(src), f"apps/{name}.c").strip()
            raise CompileError(f"apps/{name}.c: clang could not build the user space: {first_error(diag)}",
                               diagnostics=diag, source=user_text, name=f"apps/{name}.c")
        try:
            os.rename(work, out)      # whole, or not at all: another process may have built it meanwhile
        except OSError:
            if not exe.exists():
                raise
    return App(name, exe, skel, obj)
