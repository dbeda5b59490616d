"""The ``labkit`` command: one module (or folder) per subcommand, dispatched by cli.py.

Each subcommand is a thin shell over the library: what it finds or changes is
decided by the package below it (a leftover by labkit.net.leftovers, a report
by nbclient and the lessons), and it only parses arguments and prints. ``labkit
--help`` lists the subcommands; docs/ARCHITECTURE.md maps the files.
"""

__all__ = []  # the subcommands are reached through cli.main
