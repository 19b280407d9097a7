"""`pyddsar lambdas`: stage weights lambda_1..lambda_5 from WIDER-style ground truth (ATSS)."""

from __future__ import annotations

import json

from . import _progress


def run(args) -> int:
    from ..data.widerface_gt import read_gt
    from ..stage_weights import stage_weights

    images = read_gt(args.gt, args.format)
    with _progress.bar("lambdas", "img", enabled=not args.no_progress) as progress:
        result = stage_weights([g.boxes for g in images], [g.image_size for g in images], inside=args.inside,
                               progress=progress)
    if args.json:
        out = result.to_dict()
        out.update(gt=args.gt, inside=args.inside)
        print(json.dumps(out))
    else:
        print(result)
    return 0


def add_parser(sub) -> None:
    lam = sub.add_parser("lambdas", help="stage weights lambda_1..lambda_5 from WIDER-style ground truth (ATSS)")
    lam.add_argument("--gt", required=True, help="wider_face_val.mat, wider_face_*_bbx_gt.txt or label.txt")
    lam.add_argument("--format", choices=["auto", "mat", "txt", "label"], default="auto", help="default: auto")
    lam.add_argument("--inside", choices=["scrfd", "mmdet"], default="scrfd", help="ATSS inside test (default: scrfd)")
    lam.add_argument("--json", action="store_true")
    _progress.add_flag(lam)
    lam.set_defaults(func=run)
