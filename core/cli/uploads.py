"""`conveyor upload FILE`: send a file (a bar of bytes sent), then follow its
processing."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.display import SUCCEEDED, USAGE, Output, transferring
from core.cli.jobs import add_waiting, follow
from core.client import Client


def _upload(client: Client, out: Output, args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        out.note(f"error: {path}: no such file")
        return USAGE
    with transferring(out, path.name) as sent:
        created = client.uploads.create(
            path, content_type=args.content_type, on_progress=sent, direct=args.direct
        )
    if not out.as_json:
        upload = created.upload
        out.line(
            f"upload {upload.id}  {upload.filename}  {upload.size} bytes  {upload.content_type}"
        )
    if args.wait:
        return follow(client, out, created.job, args.cancel_on_interrupt)
    if out.as_json:
        out.data(created)
    else:
        out.line(f"processing: job {created.job.id} ({created.job.status})")
    return SUCCEEDED


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    upload = commands.add_parser(
        "upload", parents=[common], help="upload a file; it is stored and processed"
    )
    upload.add_argument("file")
    upload.add_argument("--content-type", help="what the file is (sniffed from its bytes anyway)")
    upload.add_argument(
        "--direct",
        action="store_true",
        help="send the bytes straight to storage with a presigned URL",
    )
    add_waiting(upload, "--wait")
    upload.set_defaults(run=_upload)
