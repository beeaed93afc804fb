"""The `auditgraph` command's subcommands (graph/cli.py parses the command line and reports failures)."""
