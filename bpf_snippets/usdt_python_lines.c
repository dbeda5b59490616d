// labkit snippet: usdt_python_lines: Python lines run, counted from the interpreter's USDT probe python:line.
// hook: USDT python:line (a uprobe: kprobe-type program; lab.attach_usdt(prog, "python:line", pid=...))
// min kernel: 4.17 (uprobes through perf_event_open)
//
// CPython 3.11 reports function__entry for every call only on its tracing
// path, which it takes while the line probe is enabled (or a tracer is set):
// attach this too when you count calls. Per CPU: no two CPUs share a counter.
#include "labkit.h"

BPF_PERCPU_ARRAY(lines, u64, 1);

int lk_py_line(struct pt_regs *ctx)
{
    lines.increment(0);
    return 0;
}
