"""The ``labkit`` command: doctor, cleanup, sandbox, report, bench, demo, lessons, course, hub."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="labkit", description="labkit: an interactive eBPF lab")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.add_parser("doctor", help="check that this machine can run the lab; prints a fix for each failure")
    sub.add_parser("cleanup", help="remove leftover labkit XDP programs and sandboxes (--dry-run, --dead-owners)")
    sub.add_parser("sandbox", help="a persistent network sandbox for the shell: up | down | status")
    sub.add_parser("report", help="execute every lesson headless and write reports/<lesson>.html (offline)")
    sub.add_parser("bench", help="benchmark the event pipeline against raw BCC and trace_printk")
    sub.add_parser("demo", help="demo to a room: `demo xdp --iface IFACE` drops pings, big counter and plot")
    sub.add_parser("lessons", help="the shipped lessons vs yours: list | reset [N ...] | update")
    sub.add_parser("course", help="the lessons as an nbgrader course: create | release | submit | autograde | gradebook")
    sub.add_parser("hub", help="the class server (./lab hub starts it): stop --state STATE")
    if not argv or argv[0] in ("-h", "--help"):
        p.print_help()
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "doctor":
        from labkit.commands.doctor import main as doctor_main  # lazy: load one command, not all

        return doctor_main(rest)
    if cmd == "cleanup":
        from labkit.commands.cleanup import main as cleanup_main  # lazy: load one command, not all

        return cleanup_main(rest)
    if cmd == "sandbox":
        from labkit.commands.sandbox import main as sandbox_main  # lazy: load one command, not all

        return sandbox_main(rest)
    if cmd == "report":
        from labkit.commands.report import main as report_main  # lazy: load one command, not all

        return report_main(rest)
    if cmd == "bench":
        from labkit.commands.bench import main as bench_main  # lazy: load one command, not all

        return bench_main(rest)
    if cmd == "demo":
        from labkit.commands.demo import main as demo_main  # lazy: load one command, not all

        return demo_main(rest)
    if cmd == "lessons":
        from labkit.commands.lessons import main as lessons_main  # lazy: load one command, not all

        return lessons_main(rest)
    if cmd == "course":
        from labkit.commands.course import main as course_main  # lazy: load one command, not all

        return course_main(rest)
    if cmd == "hub":
        from labkit.hub.stop import main as hub_main  # lazy: load one command, not all

        return hub_main(rest)
    p.error(f"unknown command {cmd!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
