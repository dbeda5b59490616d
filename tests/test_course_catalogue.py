"""`labkit course check-catalogue`: a teacher's own right and wrong answers,
judged by the exercises' checkers on the real kernel, end to end through the
command; a catalogue with a mistake in it is refused before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import labkit
from labkit._errors import ArgumentError
from labkit.commands.course.catalogue import load_catalogue

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "instructor" / "catalogue" / "example.toml"


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "labkit", "course", "check-catalogue", *args],
                          capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)


@pytest.mark.kernel
@pytest.mark.requires("root")
def test_the_shipped_example_is_judged_as_it_expects():
    r = _cli(str(EXAMPLE))
    assert r.returncode == 0, r.stdout + r.stderr
    cases = load_catalogue(EXAMPLE)
    assert f"{len(cases)} of {len(cases)} judged as expected" in r.stdout
    assert r.stdout.count("\nok ") + r.stdout.startswith("ok ") == len(cases), r.stdout
    assert {c.expect for c in cases} == {"correct", "incorrect"}      # it shows both kinds
    assert not labkit.live_attachments()


@pytest.mark.kernel
@pytest.mark.requires("root")
def test_a_verdict_the_teacher_did_not_expect_is_a_mismatch_and_exit_1(tmp_path):
    answer = tmp_path / "answers" / "drop-short.c"
    answer.parent.mkdir()
    text = EXAMPLE.read_text()
    wrong = text.split("name = \"drops the short frames")[1].split("answer = '''")[1].split("'''")[0]
    answer.write_text(wrong)
    cat = tmp_path / "course.toml"
    cat.write_text('''
[[case]]
lesson = "4"
exercise = "q1"
name = "the teacher thinks this is fine"
expect = "correct"
answer_file = "answers/drop-short.c"

[[case]]
lesson = "04"
exercise = "q1"
name = "right verdict, but the message is not the one the teacher wants"
expect = "incorrect"
says = "you forgot the bounds check"
answer_file = "answers/drop-short.c"
''')
    r = _cli(str(cat))
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("MISMATCH  04 q1  the teacher thinks this is fine: expected correct, judged incorrect")
    assert "XDP_PASS" in lines[1]                                   # the checker's own words, under it
    assert lines[2].startswith("MISMATCH  04 q1  right verdict, but") and \
        "incorrect as expected, but the message does not say 'you forgot the bounds check'" in lines[2]
    assert lines[-1] == "0 of 2 judged as expected"


@pytest.mark.parametrize("body, says", [
    ('[[case]]\nlesson = "04"\nexercise = "q1"\nexpect = "correct"\nanswer = "x"\n', "'name' is missing"),
    ('[[case]]\nlesson = "42"\nexercise = "q1"\nname = "n"\nexpect = "correct"\nanswer = "x"\n',
     "there is no lesson '42' with exercises"),
    ('[[case]]\nlesson = "04"\nexercise = "q9"\nname = "n"\nexpect = "correct"\nanswer = "x"\n',
     "lesson 04 has no exercise 'q9'; its exercises: q1, q2"),
    ('[[case]]\nlesson = "04"\nexercise = "q1"\nname = "n"\nexpect = "right"\nanswer = "x"\n',
     'expect must be "correct" or "incorrect", not \'right\''),
    ('[[case]]\nlesson = "04"\nexercise = "q1"\nname = "n"\nexpect = "correct"\nanswer = "x"\nanswer_file = "y"\n',
     "give the answer once, as one of answer, answer_file, answer_python (it has answer, answer_file)"),
    ('[[case]]\nlesson = "04"\nexercise = "q1"\nname = "n"\nexpect = "correct"\nanswer_file = "nope.c"\n',
     "cannot read answer_file"),
    ('[[case]]\nlesson = "04"\nexercise = "q1"\nname = "n"\nexpect = "correct"\nanswer_python = "lambda df:"\n',
     "answer_python does not evaluate: SyntaxError"),
    ('[[case]]\nlesson = "04"\nexercise = "q1"\nname = "n"\nexpect = "correct"\nanswer = "x"\nexpected = "y"\n',
     "unknown key(s) expected"),
    ('lesson = "04"\n', "has no [[case]] tables"),
    ('[[case]\n', "is not valid TOML"),
])
def test_a_catalogue_with_a_mistake_is_refused_with_what_to_fix(tmp_path, body, says):
    cat = tmp_path / "c.toml"
    cat.write_text(body)
    with pytest.raises(ArgumentError) as ei:
        load_catalogue(cat)
    assert says in str(ei.value) and str(cat) in str(ei.value), str(ei.value)


@pytest.mark.kernel
@pytest.mark.requires("root")
def test_the_command_checks_every_file_before_it_runs_a_case(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[case]]\nlesson = "04"\nexercise = "q1"\nname = "n"\nexpect = "maybe"\nanswer = "x"\n')
    r = _cli(str(EXAMPLE), str(bad))
    assert r.returncode == 1 and "expect must be" in r.stderr, r.stdout + r.stderr
    assert "judged as expected" not in r.stdout and not r.stdout.strip()    # no case of the good file ran
    assert _cli(str(tmp_path / "missing.toml")).stderr.startswith("labkit course: cannot read the catalogue")
