"""labkit.views.tables: trace_pipe lines parsed (no kernel)."""

from __future__ import annotations

import math

from labkit.views.tables import parse_trace_pipe

TEXT = """\
          python-2094    [000] ...21   875.804186: bpf_trace_printk: lk-hello 2094
 kworker/u4:1-80 (  80) [001] d..1. 12.5: bpf_trace_printk: x
CPU:1 [LOST 3 EVENTS]

"""


def test_trace_pipe_lines_parse():
    df = parse_trace_pipe(TEXT)
    assert list(df.columns) == ["task", "pid", "cpu", "ts", "event", "message"]
    first = df.iloc[0]
    assert (first.task, first.pid, first.cpu, first.ts) == ("python", 2094, 0, 875.804186)
    assert first.event == "bpf_trace_printk" and first.message == "lk-hello 2094"
    assert df.iloc[1].task == "kworker/u4:1" and df.iloc[1].pid == 80 and df.iloc[1].message == "x"
    # a line that does not parse is kept whole; blank lines are not
    assert len(df) == 3 and df.iloc[2].message == "CPU:1 [LOST 3 EVENTS]" and math.isnan(df.iloc[2].ts)


def test_contains_and_max_lines():
    assert list(parse_trace_pipe(TEXT, contains="lk-").pid) == [2094]
    assert list(parse_trace_pipe(TEXT, max_lines=1).task) == ["python"]
    empty = parse_trace_pipe("")
    assert empty.empty and list(empty.columns) == ["task", "pid", "cpu", "ts", "event", "message"]
