"""The ``labkit`` command and its subcommands (each module is one of them).

    cli.py       dispatch: labkit doctor | cleanup | sandbox | report | bench
    doctor.py    can this machine run the lab? a fix for every failed check
    cleanup.py   find and remove what dead owners left behind
    report/      execute lessons headless, export offline HTML
    bench/       labkit's event pipeline against raw BCC and trace_printk
"""

__all__ = []  # the subcommands are reached through cli.main
