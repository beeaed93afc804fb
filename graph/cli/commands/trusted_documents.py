"""`auditgraph trusted-documents build`: the allow-list a server started with TRUSTED_DOCUMENTS_FILE runs."""

import argparse
import sys
from pathlib import Path

import orjson

from db.settings import Settings
from graph.access.trusted_documents import TrustedDocumentsError, build_manifest
from graph.cli.commands.failures import REFUSED, CommandError


def build_trusted_documents(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: the schema brings the metrics, which a command that serves nothing must not create
    # (with PROMETHEUS_MULTIPROC_DIR set, importing them writes files for this process).
    from graph.schema import build_schema

    try:
        manifest = build_manifest(args.folder, build_schema(settings)._schema)
    except TrustedDocumentsError as error:
        raise CommandError(str(error), REFUSED) from None
    text = orjson.dumps(manifest, option=orjson.OPT_INDENT_2).decode() + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as error:
        raise CommandError(f"cannot write {args.output}: {error.strerror}", REFUSED) from None
    print(f"wrote {len(manifest)} trusted documents to {args.output}", file=sys.stderr)
    return 0


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    trusted_parser = commands.add_parser(
        "trusted-documents", help="the allow-list of documents a server started with TRUSTED_DOCUMENTS_FILE runs",
        description="Manage the allow-list of documents (TRUSTED_DOCUMENTS_FILE).",
    )
    trusted_commands = trusted_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = trusted_commands.add_parser(
        "build",
        help="build the allow-list from a folder of .graphql files",
        description="Check every .graphql file under FOLDER against the schema and write the allow-list: "
                    "a JSON object mapping each document's sha256 to its text, as written and as graphql-js "
                    "prints it. Each file is one document as its client sends it; files of fragments "
                    "alone are skipped. Set TRUSTED_DOCUMENTS_FILE to the result.",
    )
    build.add_argument("folder", type=Path, help="the folder searched for .graphql files, subfolders included")
    build.add_argument("-o", "--output", type=Path, help="the file to write (default: standard output)")
    build.set_defaults(handler=build_trusted_documents)
