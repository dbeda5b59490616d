"""``labkit sandbox up|down|status``: persistent network sandboxes for the shell (see :func:`main`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from labkit._errors import LabkitError
from labkit.net.records import SandboxRecord, list_sandboxes, remove_sandbox
from labkit.net.sandbox import Sandbox

__all__ = ["main"]


def _format_table(records: Sequence[SandboxRecord]) -> str:
    headers = ["ID", "STATUS", "SUBNET", "HOST", "TARGET", "OWNER", "CREATED"]
    rows = []
    for r in records:
        def side(ns: str, iface: str, ip: str | None, present: bool) -> str:
            text = f"{ns}/{iface}" + (f" {ip}" if ip else "")
            return text if present else f"{text} (missing)"

        owner = "-" if r.owner_pid is None else f"{r.owner_pid} ({'running' if r.alive else 'gone'})"
        rows.append([
            r.id,
            r.status,
            r.subnet or "-",
            side(r.host_ns, r.host_iface, r.host_ip, r.host_ns_present),
            side(r.target_ns, r.target_iface, r.target_ip, r.target_ns_present),
            owner,
            r.created or "-",
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    return "\n".join(
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip()
        for row in [headers, *rows]
    )


def main(argv: list[str]) -> int:
    """``labkit sandbox up|down|status``; returns the exit status.

    * ``up [--json]`` builds a *persistent* sandbox that outlives this process
      and prints its names and addresses.
    * ``down [ID ...] [--all] [--force]`` removes sandboxes; with no ID it removes
      the only persistent one; ``--all`` removes every persistent and leftover
      sandbox (``--force``: also those that running processes own).
    * ``status [--json]`` prints a table of every sandbox.
    """
    parser = argparse.ArgumentParser(
        prog="labkit sandbox",
        description="Private two-namespace networks (veth, 198.18.0.0/15) for XDP lessons.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{up,down,status}")
    up = sub.add_parser("up", help="build a persistent sandbox and print its names")
    up.add_argument("--json", action="store_true", help="print JSON")
    down = sub.add_parser("down", help="remove sandboxes")
    down.add_argument("ids", nargs="*", metavar="ID", help="sandbox id(s), from `labkit sandbox status`")
    down.add_argument("--all", action="store_true", help="every persistent and leftover sandbox")
    down.add_argument("--force", action="store_true", help="also remove sandboxes running processes own")
    status = sub.add_parser("status", help="list sandboxes")
    status.add_argument("--json", action="store_true", help="print JSON")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on errors
        return int(exc.code or 0)

    try:
        if args.command == "up":
            return _cli_up(args.json)
        if args.command == "status":
            records = list_sandboxes()
            if args.json:
                print(json.dumps([r.to_dict() for r in records], indent=2))
            elif records:
                print(_format_table(records))
            else:
                print("no labkit sandboxes")
            return 0
        return _cli_down(args.ids, args.all, args.force)
    except LabkitError as exc:
        print(f"labkit sandbox: {exc}", file=sys.stderr)
        return 1


def _cli_up(as_json: bool) -> int:
    sb = Sandbox(persistent=True)
    info = sb.describe()
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    print(f"sandbox {sb.id} is up (persistent: remove it with `labkit sandbox down {sb.id}`)")
    for key, value in info.items():
        print(f"  {key.ljust(width)}  {value}")
    print(f"  try: ip netns exec {sb.host_ns} ping -c 3 {sb.target_ip}")
    return 0


def _cli_down(ids: list[str], all_: bool, force: bool) -> int:
    if not ids and not all_:
        persistent = [r for r in list_sandboxes() if r.persistent]
        if len(persistent) != 1:
            known = ", ".join(r.id for r in persistent) or "none"
            print(
                "labkit sandbox down: name a sandbox id or pass --all "
                f"(persistent sandboxes: {known})",
                file=sys.stderr,
            )
            return 2
        ids = [persistent[0].id]
    targets: list[str | SandboxRecord] = list(ids)
    skipped: list[SandboxRecord] = []
    if all_:
        for record in list_sandboxes():
            if record.persistent or record.leftover or force:
                targets.append(record)
            else:
                skipped.append(record)
    if not targets and not skipped:
        print("no labkit sandboxes to remove")
    status = 0
    for target in targets:
        try:
            record = remove_sandbox(target, force=force)
            print(f"removed sandbox {record.id} ({record.host_ns}, {record.target_ns})")
        except LabkitError as exc:
            print(f"labkit sandbox down: {exc}", file=sys.stderr)
            status = 1
    for record in skipped:
        print(
            f"kept sandbox {record.id}: process {record.owner_pid} is using it (--force removes it)"
        )
    return status
