"""`ocrmesh`, the command-line client: sign up, log in and read images through the gateway
(or ocr_svc directly with --grpc). docs/cli.md has the commands and exit codes."""

from ocrmesh_cli.app import app, main

__all__ = ["app", "main"]
