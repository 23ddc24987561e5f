"""`dispatch mcp`: registered here so the CLI does not import the MCP SDK
(~0.7 s) unless the command actually runs."""

from __future__ import annotations

import argparse

from dispatchsite.core.commands import register_command

DEFAULT_HTTP_PORT = 8766


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--http",
        action="store_true",
        help="serve streamable HTTP on 127.0.0.1 instead of stdio",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_HTTP_PORT,
        help=f"HTTP port with --http (default {DEFAULT_HTTP_PORT})",
    )


@register_command(
    "mcp",
    help="serve the dispatch MCP tools (stdio; --http for streamable HTTP)",
    configure=configure,
)
def mcp_command(args: argparse.Namespace) -> None:
    from dispatchsite.surfaces.mcp.serve import run_mcp

    run_mcp(http=args.http, port=args.port)
