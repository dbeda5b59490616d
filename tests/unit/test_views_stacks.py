"""Stacks as tables and flame graphs, without the kernel: folding named
stacks, stack ids read from keys of any width, and what a flame graph draws."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from labkit._errors import ArgumentError  # noqa: E402
from labkit.views.stacks import flame_graph, fold, stack_error  # noqa: E402

TABLE = pd.DataFrame({
    "user_stack_id": [4, 9, 2, -14],
    "kernel_stack_id": [-14, -14, 7, -14],
    "user frames": [["main", "lk_stages", "lk_compress", "lk_mix"], ["main", "lk_stages", "lk_parse", "lk_mix"],
                    ["main", "lk_wait_input"], []],
    "kernel frames": [[], [], ["entry_SYSCALL_64", "ksys_read", "schedule"], []],
    "value": [30, 10, 5, 2],
})


def test_fold_joins_the_user_frames_then_the_kernel_ones_outermost_first():
    folded = fold(TABLE)
    assert folded.to_dict() == {"main;lk_stages;lk_compress;lk_mix": 30, "main;lk_stages;lk_parse;lk_mix": 10,
                                "main;lk_wait_input;entry_SYSCALL_64;ksys_read;schedule": 5, "[no stack]": 2}
    assert list(folded) == sorted(folded, reverse=True)


def test_fold_of_one_column_sums_equal_stacks():
    twice = pd.concat([TABLE, TABLE], ignore_index=True)
    assert fold(twice, "user frames").to_dict() == {"main;lk_stages;lk_compress;lk_mix": 60,
                                                    "main;lk_stages;lk_parse;lk_mix": 20, "main;lk_wait_input": 10,
                                                    "[no stack]": 4}


def test_a_flame_graph_draws_a_box_per_function_as_wide_as_its_share():
    fig = flame_graph(fold(TABLE, "user frames"), title="t")
    ax = fig.axes[0]
    boxes = {t.get_text().split(" (")[0]: t for t in ax.texts}
    widths = sorted(round(p.get_width(), 6) for p in ax.patches)
    total = 47
    # main (45), lk_stages (40), lk_compress (30), lk_mix twice (30, 10), lk_parse (10), lk_wait_input (5), [no stack]
    assert widths == sorted(round(n / total, 6) for n in (45, 40, 30, 30, 10, 10, 5, 2))
    assert {"main", "lk_stages", "lk_compress", "lk_mix"} <= set(boxes)
    assert "share of 47 samples" in ax.get_xlabel() and ax.get_title() == "t"
    matplotlib.pyplot.close(fig)


def test_narrow_boxes_can_be_left_out():
    fig = flame_graph(fold(TABLE, "user frames"), min_width=0.25)
    # main (45/47), lk_stages (40/47), lk_compress and its lk_mix (30/47); lk_parse's 10/47 is under a quarter
    assert sorted(t.get_text().split(" (")[0] for t in fig.axes[0].texts) == ["lk_compress", "lk_mix", "lk_stages",
                                                                                "main"]
    assert len(fig.axes[0].patches) == 4
    matplotlib.pyplot.close(fig)


def test_bad_inputs_name_what_to_pass():
    with pytest.raises(ArgumentError, match=r"labkit\.fold\(df\)"):
        flame_graph({"main;lk_mix": 3})
    with pytest.raises(ArgumentError, match=r"the table has user_stack_id, value"):
        fold(TABLE[["user_stack_id", "value"]])


def test_a_negative_stack_id_says_what_it_means():
    assert stack_error(-14).startswith("EFAULT") and stack_error(-17).startswith("EEXIST")
