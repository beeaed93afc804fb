"""The `auditgraph` command: main.py parses the command line and reports failures, commands/ holds the
subcommands. `python -m graph.cli` runs it as the installed `auditgraph` script does.

May import anything in graph/ and db/: it stands beside graph.app at the top, and nothing imports it."""
