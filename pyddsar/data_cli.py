"""``pyddsar data ...``: synthetic WIDER-format data sets and augmentation previews."""

from __future__ import annotations


def add_parser(sub) -> None:
    d = sub.add_parser("data", help="data sets: synthetic WIDER-format data, augmentation preview")
    dsub = d.add_subparsers(dest="data_command", required=True)
    _ = dsub  # sub-commands are added below as they land
