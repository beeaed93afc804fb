"""The `auditgraph` command's subcommands (graph/cli/main.py parses the command line and reports failures)."""
