"""Pure logic of the exercise framework, no kernel: verdicts from a checker's
outcome, the result and summary dicts, the registry, the shared map helpers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import labkit.exercises
from labkit._errors import CompileError, LabkitError, VerifierError
from labkit.exercises import SUMMARY_MIME, Exercise, Lesson, Result, lesson
from labkit.exercises.framework import (CORRECT, INCORRECT, NOT_ATTEMPTED, Check, Checklist, Incorrect, Note, Summary,
                                        int_key_column, need_map, plural, snippet_text, value_column)


def exercise(checker, **kw) -> Exercise:
    return Exercise("q9", "do the thing", checker, "a hint", "the solution text", lambda: "the answer", **kw)


def raising(exc):
    def checker(answer):
        raise exc
    return checker


# ------------------------------------------------------------------ registry
def test_a_lesson_is_imported_by_name_and_made_once():
    from labkit.exercises import lesson01 as ex          # what every notebook's setup cell does

    assert isinstance(ex, Lesson) and ex is lesson("01") is lesson(1) is labkit.exercises.lesson01
    assert ex.number == "01" and list(ex.exercises) == ["q1", "q2"] and ex.q2 is ex.exercises["q2"]
    assert [lesson(n).number for n in range(5)] == ["00", "01", "02", "03", "04"]


def test_an_unknown_lesson_says_which_exist():
    with pytest.raises(LabkitError, match="no lesson .99.; lessons with exercises: 00, 01, 02, 03, 04"):
        lesson("99")
    with pytest.raises(AttributeError, match="has no attribute 'lessonx'"):
        labkit.exercises.lessonx


def test_lessons_are_found_by_their_modules_and_imported_when_asked():
    """A lesson is a ``lessonNN`` module of labkit.exercises.lessons (one per numbered notebook with
    exercises), found without importing it; importing labkit.exercises imports none of them."""
    from pathlib import Path

    from labkit.exercises.lessons import lesson_numbers

    root = Path(__file__).resolve().parents[2]
    modules = sorted(p.stem[6:] for p in (root / "labkit" / "exercises" / "lessons").glob("lesson[0-9][0-9].py"))
    assert lesson_numbers() == modules and "00" in modules and "09" in modules
    notebooks = {p.name[:2] for p in (root / "notebooks").glob("[0-9][0-9]-*.ipynb")}
    assert set(modules) <= notebooks
    code = ("import sys, labkit.exercises as e; print(sorted(m for m in sys.modules if '.lessons.lesson' in m)); "
            "e.lesson('03'); print(sorted(m for m in sys.modules if '.lessons.lesson' in m))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["[]", "['labkit.exercises.lessons.lesson03']"]


def test_snippets_are_read_when_asked():
    assert "BPF_ARRAY(counts" in snippet_text("solution_04_bounds_checked")
    assert lesson("04").q1.solution_answer() == "solution_04_bounds_checked"


# ------------------------------------------------------------------ verdicts
@pytest.mark.parametrize("answer", [None, Ellipsis, "", "  \n"])
def test_no_answer_is_not_attempted(answer, capsys):
    called = []
    ex = exercise(lambda a: called.append(a))
    res = ex.check(answer)
    assert res.status == NOT_ATTEMPTED and not res and not called
    assert res.message == ("put your answer in the variable above and run this cell again "
                           "(task: do the thing)")
    assert capsys.readouterr().out == f"q9: not attempted: {res.message}\n"   # shown outside a notebook too


def test_checker_outcomes_become_verdicts():
    res = exercise(lambda a: ("yes: well done", {"n": a})).check(3)
    assert res.status == CORRECT and res.correct and bool(res)
    assert (res.exercise, res.message, res.details) == ("q9", "yes: well done", {"n": 3})
    assert res.seconds >= 0

    res = exercise(raising(Incorrect("counted 6", counted=6))).check("x")
    assert (res.status, res.message, res.details) == (INCORRECT, "counted 6", {"counted": 6}) and not res

    res = exercise(raising(VerifierError("cannot load: R1 invalid mem access 'scalar'\nmore", log="l"))).check("x")
    assert res.status == INCORRECT and res.details == {"error": "VerifierError"}
    assert res.message == ("the verifier refused the program: R1 invalid mem access 'scalar'\n"
                           "(read the whole log: labkit.VerifierError's .log; lesson 04 shows how)")

    res = exercise(raising(CompileError("no", diagnostics="main.c:3: error: x"))).check("x")
    assert res.message == "the program does not compile:\nmain.c:3: error: x"
    assert res.details == {"error": "CompileError"}

    res = exercise(raising(LabkitError("the sandbox is gone"))).check("x")
    assert res.message == "LabkitError: the sandbox is gone" and res.details == {"error": "LabkitError"}

    res = exercise(raising(ZeroDivisionError("division by zero"))).check("x")
    assert res.message == "running your answer raised ZeroDivisionError: division by zero"
    assert res.details == {"error": "ZeroDivisionError"}


def test_an_exercise_keeps_its_last_ten_results():
    ex = exercise(lambda a: ("ok", {}))
    assert ex.last is None and repr(ex) == "<exercise q9: not attempted> do the thing"
    results = [ex.check(i) for i in range(12)]
    assert ex.results == results[-10:] and ex.last is results[-1]
    assert repr(ex) == "<exercise q9: correct> do the thing"


def test_check_solution_marks_the_reference_run():
    res = exercise(lambda a: ("ok", {"got": a})).check_solution()
    assert res.correct and res.details == {"got": "the answer", "checked": "reference solution"}
    assert res.of == "reference solution" and "(reference solution)" in repr(res)


def test_checking_the_reference_never_changes_the_students_verdict(capsys):
    ex = exercise(lambda a: ("ok", {}) if a == "the answer" else (_ for _ in ()).throw(Incorrect("wrong")))
    mine = ex.check("my try")
    ref = ex.check_solution()
    assert (mine.status, ref.status) == (INCORRECT, CORRECT)
    assert ex.status == INCORRECT and ex.last is mine and ex.results == [mine] and ex.reference is ref
    ls = Lesson("09", "t", [ex])
    d = ls.summary_dict()
    assert d["exercises"] == {"q9": "incorrect"} and d["reference_checked"] == {"q9": "correct"}
    assert d["checks"] == {"q9": ["incorrect"]} and d["scores"] == {"q9": 0.0}
    assert "incorrect (reference solution checked: correct)" in ls.summary().mimebundle()["text/html"]


@pytest.mark.parametrize("answer", [
    "solution_02_arp_safe", "solution_02_arp_safe.c", "bpf_snippets/solution_04_bounded_loop.c",
])
def test_a_reference_named_is_not_an_answer(answer, capsys):
    called = []
    res = exercise(lambda a: called.append(a) or ("ok", {})).check(answer)
    assert res.status == INCORRECT and not called
    assert res.message.startswith("that is the reference solution, not your answer")


def test_a_reference_pasted_is_not_an_answer_even_reformatted(capsys):
    text = snippet_text("solution_03_count_by_tid")
    reformatted = "// my answer\n" + "\n".join("   " + line + "   /* mine */" for line in text.splitlines())
    for answer in (text, reformatted):
        res = exercise(lambda a: ("ok", {})).check(answer)
        assert res.status == INCORRECT and "reference solution" in res.message
    changed = text.replace("counts.", "counts .", 1) + "\n// x\nint lk_other(void *c) { return 0; }\n"
    assert exercise(lambda a: ("ok", {})).check(changed).status == CORRECT


def test_unknown_snippet_errors_never_list_the_references():
    from labkit.programs.compile import resolve_source

    with pytest.raises(LabkitError) as ei:
        resolve_source("solution_02_arp_saf")
    known = str(ei.value).split("Known snippets:")[1]
    assert "solution_" not in known and "Did you mean" not in str(ei.value) and "xdp_icmp_drop_classic" in known


def test_a_checklist_gives_parts_and_partial_credit(capsys):
    def checker(answer):
        c = Checklist()
        c.part("pings are dropped", answer >= 1, "pings got through")
        c.part("ARP passes", answer >= 2, "ARP was dropped")
        c.part("UDP passes", answer >= 3, "UDP was dropped")
        return c.done("yes", n=answer)

    half = exercise(checker).check(2)
    assert half.status == INCORRECT and half.message == "not yet: UDP was dropped" and half.score == 0.667
    assert [(p.name, p.passed) for p in half.parts] == [("pings are dropped", True), ("ARP passes", True),
                                                      ("UDP passes", False)]
    assert half.to_dict()["parts"][2] == {"name": "UDP passes", "passed": False, "message": "UDP was dropped"}
    none = exercise(checker).check(0)
    assert none.score == 0.0 and none.message == "not yet: pings got through; ARP was dropped; UDP was dropped"
    full = exercise(checker).check(3)
    assert full.correct and full.score == 1.0 and len(full.parts) == 3 and full.details == {"n": 3}


def test_hint_and_solution_are_notes(capsys):
    ex = exercise(lambda a: ("ok", {}), solution_language="c")
    hint = ex.hint()
    assert isinstance(hint, Note) and repr(hint) == "q9: hint\na hint"
    sol = ex.solution()
    assert repr(sol) == "q9: a solution\n\n\nthe solution text" and sol.language == "c"
    assert "<pre style='font-size:12px'>the solution text</pre>" in sol.mimebundle()["text/html"]
    assert capsys.readouterr().out == "q9: hint\na hint\nq9: a solution\n\n\nthe solution text\n"


# ------------------------------------------------------------ result/summary
def test_result_dict_is_json():
    res = Result("q1", CORRECT, "fine <ok>\nline 2", {"n": np.int64(3), "s": {1}, 5: object}, seconds=1.23456)
    d = res.to_dict()
    assert d == {"status": "correct", "message": "fine <ok>\nline 2", "seconds": 1.235, "of": "your answer",
                 "score": 1.0, "parts": [], "details": {"n": 3, "s": [1], "5": str(object)}}
    json.dumps(d)
    html = res.mimebundle()["text/html"]
    assert "q1: correct" in html and "fine &lt;ok&gt;<br>line 2" in html and "#2a7d2a" in html
    assert repr(res) == "q1: correct: fine <ok>\nline 2"


def test_lesson_summary_dict_and_its_table(capsys):
    ok = exercise(lambda a: ("ok", {}))
    ls = Lesson("09", "A test lesson", [ok, Exercise("q2", "t", lambda a: ("", {}), "h", "s", lambda: None)])
    ok.check(None)
    ok.check(1)
    d = ls.summary_dict()
    assert d["lesson"] == "09" and d["title"] == "A test lesson" and isinstance(d["pid"], int)
    assert d["exercises"] == {"q9": "correct", "q2": "not attempted"}
    assert d["checks"] == {"q9": ["not attempted", "correct"], "q2": []}
    assert d["scores"] == {"q9": 1.0, "q2": 0.0} and d["messages"] == {"q9": "ok", "q2": ""}
    assert d["reference_checked"] == {"q9": None, "q2": None}
    assert d["attachments_left"] == 0 and d["panels_left"] == 0
    assert set(d) == {"lesson", "title", "pid", "exercises", "scores", "messages", "checks", "reference_checked",
                      "attachments_left", "panels_left"}, "the summary is the student's verdicts (no facts)"
    capsys.readouterr()
    s = ls.summary()
    assert isinstance(s, Summary) and s.data == d
    bundle = s.mimebundle()
    assert bundle[SUMMARY_MIME] == s.data and json.loads(bundle["text/plain"]) == s.data
    assert "<b>Lesson 09: what this run did</b>" in bundle["text/html"]
    assert "<th style='text-align:left'>exercise q9</th><td style='text-align:left'>correct</td>" \
        in bundle["text/html"]
    assert "attached now (given back when the kernel stops)" in bundle["text/html"]
    assert "live panels now" in bundle["text/html"]
    assert json.loads(capsys.readouterr().out) == d
    assert not hasattr(ls, "record") and not hasattr(ls, "facts")


# ------------------------------------------------------------- shared helpers
def test_map_columns():
    assert value_column(pd.DataFrame({"key": [1], "value": [2]})) == "value"
    df = pd.DataFrame({"tid": [7, 8], "flag": [True, False], "count": [1, 2], "n": [3.0, 4.0]})
    assert value_column(df) == "n"
    assert int_key_column(df, "n") == "tid" and int_key_column(df, "tid") == "count"
    assert int_key_column(pd.DataFrame({"key": ["a"], "value": [1]}), "value") == "key"
    with pytest.raises(Incorrect, match=r"the map's values are not numbers \(columns: comm, ok\)"):
        value_column(pd.DataFrame({"comm": ["x"], "ok": [True]}))
    with pytest.raises(Incorrect, match=r"the map's keys are not numbers \(columns: comm, n\)"):
        int_key_column(pd.DataFrame({"comm": ["x"], "n": [1]}), "n")


def test_plural_and_need_map():
    assert [plural(1, "thread"), plural(3, "thread"), plural(2, "process", "processes")] == \
        ["1 thread", "3 threads", "2 processes"]

    class Prog:
        def has_table(self, name):
            return name == "counts"

    need_map(Prog(), "counts")
    with pytest.raises(Incorrect, match=r"no map called 'newlines': the checker reads that map "
                                        r"\(BPF_HASH\(newlines, \.\.\.\)\)"):
        need_map(Prog(), "newlines")


def test_messages_and_hints_render_code_spans_as_code_in_html_and_keep_them_as_text():
    from labkit.exercises.framework import Note, Result

    r = Result("q1", "incorrect", "write `if ((void *)(ip + 1) > data_end) return XDP_PASS;` first & <then>")
    html = r._repr_html_()
    assert "<code>if ((void *)(ip + 1) &gt; data_end) return XDP_PASS;</code>" in html
    assert "`" not in html and "&amp; &lt;then&gt;" in html          # no literal backticks, the rest escaped
    assert "`if ((void *)(ip + 1) > data_end) return XDP_PASS;`" in repr(r)   # plain text keeps them
    n = Note("q1: hint", "use `lookup_or_try_init()`")
    assert "<code>lookup_or_try_init()</code>" in n.mimebundle()["text/html"]
    assert "`lookup_or_try_init()`" in n.mimebundle()["text/plain"]


# ------------------------------------------------------------- weights, gates, the check reused
def _parts(**passed) -> list:
    from labkit.exercises.framework import Part

    return [Part(name.replace("_", " "), ok) for name, ok in passed.items()]


def test_scoring_weighs_the_parts_and_a_failed_gate_caps_the_score():
    from labkit.exercises.framework import Scoring

    parts = _parts(counts=True, only=True, exact=False)
    assert Scoring().fraction(INCORRECT, parts) == pytest.approx(2 / 3)           # every part the same
    weighed = Scoring({"exact": 2})
    assert weighed.fraction(INCORRECT, parts) == 0.5 and weighed.weight("counts") == 1.0
    gated = Scoring({"exact": 2}, {"exact": 0.25})
    assert gated.fraction(INCORRECT, parts) == 0.25 and gated.cap("exact") == 0.25 and gated.cap("only") is None
    assert gated.fraction(INCORRECT, _parts(counts=False, only=True, exact=True)) == 0.75   # a passed gate: no cap
    assert gated.fraction(CORRECT, []) == 1.0                                     # correct is whole
    assert gated.fraction(INCORRECT, []) == 0.0 and gated.fraction(NOT_ATTEMPTED, parts) == 0.0
    assert Scoring({"counts": 0, "only": 0, "exact": 0}).fraction(INCORRECT, parts) == 0.0
    r = Result("q1", INCORRECT, "not yet", parts=parts)
    assert r.score == 0.667 and gated.score(r) == 0.25                          # Result.score: equal weights


def test_scoring_names_parts_by_pattern_and_refuses_nonsense():
    from labkit.exercises.framework import Scoring

    s = Scoring({"holds at most *": 3, "UDP to port * is dropped": 2}, {"source .70: *": 0})
    assert s.weight("holds at most 8") == 3 and s.weight("holds at most") == 1
    assert s.weight("UDP to port 4444 is dropped") == 2 and s.weight("UDP to port 23569 (4444 swapped) leaves") == 1
    assert s.cap("source .70: drop (inside the blocked /26 (.64 - .127))") == 0 and s.cap("source .7: pass") is None
    merged = s.merged({"holds at most *": 1}, {"new": 0.5})
    assert merged.weight("holds at most 8") == 1 and merged.cap("new") == 0.5 and s.weight("holds at most 8") == 3
    for bad in ({"w": -1}, {"w": "2"}, {"w": True}, {"": 1}, {"w": float("nan")}):
        with pytest.raises(ValueError):
            Scoring(bad)
    with pytest.raises(ValueError, match="from 0 to 1"):
        Scoring(gates={"g": 1.5})


def test_scoring_explains_itself():
    from labkit.exercises.framework import Scoring

    s = Scoring({"exact": 2}, {"exact": 0.25})
    lines = s.explain(_parts(counts=True, only=True, exact=False))
    assert lines == ["✓ counts (weight 1)", "✓ only (weight 1)",
                     "✗ exact (weight 2; essential: without it the exercise earns at most 25%)",
                     "parts passed: 2 of 4 by weight (50%)",
                     "an essential part failed (exact): the exercise earns at most 25%"]
    assert s.to_dict(_parts(counts=True, exact=False)) == {"weights": {"counts": 1.0, "exact": 2.0},
                                                          "gates": {"exact": 0.25}}
    assert s.explain([]) == []
    zero = Scoring(gates={"exact": 0}).explain(_parts(counts=True, exact=False))
    assert zero[1:] == ["✗ exact (weight 1; essential: without it the exercise earns nothing)",
                        "parts passed: 1 of 2 by weight (50%)",
                        "an essential part failed (exact): the exercise earns nothing"]


def test_the_graders_check_reuses_the_students_verdict_on_the_same_answer(capsys):
    runs = []
    ex = exercise(lambda a: runs.append(a) or ("ok", {}))
    ls = Lesson("07", "t", [ex])
    assert ex.lesson == "07" and ls.q9 is ex
    answer = "int f(void) { return 0; }"
    res = ex.check(answer)
    assert ex.verdict_for(answer) is res and ex.verdict_for("int f(void) { return 0; }") is res   # same text
    assert ex.verdict_for("int g(void) { return 0; }") is None and runs == [answer]
    program = object()
    res = ex.check(program)
    assert ex.verdict_for(program) is res and ex.verdict_for(object()) is None          # the same object only
    mine = {"not ok": ["hook: kprobe"], "hook": "tracepoint"}
    res = ex.check(mine)
    assert ex.verdict_for(mine) is res
    mine["not ok"].append("btf")                                                      # changed after its check
    assert ex.verdict_for(mine) is None
    ex.check_solution()                                                               # the reference's run
    assert ex.verdict_for("the answer") is None                                      # never the student's
    assert exercise(lambda a: ("ok", {})).verdict_for("x") is None                  # nothing checked yet


def test_the_integrity_setting_decides_what_a_copy_of_the_reference_earns(monkeypatch, capsys):
    from labkit.exercises.framework import REFERENCE_POLICY_ENV, reference_policy

    text = snippet_text("solution_03_count_by_tid")
    runs = []
    ex = exercise(lambda a: runs.append(a) or ("yes: counted", {}))
    monkeypatch.delenv(REFERENCE_POLICY_ENV, raising=False)
    assert reference_policy() == "zero"
    res = ex.check(text)
    assert res.status == INCORRECT and res.details == {"error": "reference"} and not runs
    monkeypatch.setenv(REFERENCE_POLICY_ENV, "full")
    res = ex.check(text)
    assert res.correct and res.details == {"reference_copy": True} and runs == [text]
    monkeypatch.setenv(REFERENCE_POLICY_ENV, "anything else")
    assert reference_policy() == "zero"


# ------------------------------------------------------------------ observe + diagnose
def test_a_check_judges_the_observation_as_json_has_it_and_keeps_it():
    seen: list = []

    def diagnose(obs):
        seen.append(obs)
        c = Checklist()
        c.part("counted", obs["n"] == 3, f"counted {obs['n']}")
        return c.done("yes", n=obs["n"])

    ex = exercise(Check(lambda answer: {"n": answer, "pairs": ((1, 2),)}, diagnose))
    res = ex.check(3)
    assert res.correct and seen == [{"n": 3, "pairs": [[1, 2]]}]          # a tuple arrives as JSON's list
    assert res.details == {"n": 3, "observation": {"n": 3, "pairs": [[1, 2]]}}
    res = ex.check(2)
    assert res.status == INCORRECT and res.message == "not yet: counted 2" and res.details["observation"]["n"] == 2
    again = ex.diagnose(res.details["observation"])                    # judged again, nothing run
    assert (again.status, again.message, again.score, again.of) == (INCORRECT, res.message, 0.0, "recorded observation")
    assert ex.results[-1] is res                                       # not the student's verdict


def test_an_observation_json_cannot_keep_is_the_checkers_error_and_a_plain_checker_cannot_rejudge():
    res = exercise(Check(lambda answer: {"fn": print}, lambda obs: ("yes", {}))).check("x")
    assert res.status == INCORRECT and res.message.startswith("running your answer raised TypeError")
    with pytest.raises(LabkitError, match="is not an observe \\+ diagnose Check"):
        exercise(lambda answer: ("yes", {})).diagnose({})
