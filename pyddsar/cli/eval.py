"""``pyddsar eval``: WIDER Face Easy / Medium / Hard AP from prediction files (or, once the detector
lands, from a model through :func:`pyddsar.evaluation.evaluate_model`)."""

from __future__ import annotations

import json
import os
import sys
import warnings

from . import _progress


def _cmd_eval(args) -> int:
    from ..evaluation import evaluate, evaluate_model, write_ap_json, write_pr_plot

    if args.predictions and (args.model or args.weights or args.data):
        raise ValueError("give either --predictions DIR or --model/--weights/--data, not both")
    if not args.predictions and not (args.weights and args.data):
        raise ValueError("give --predictions DIR, or --weights and --data (and --model unless the weights are a "
                         "pyddsar model file)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.predictions:
            res = evaluate(args.predictions, args.gt, iou_thresh=args.iou)
        else:
            try:
                with _progress.bar("eval", "img", enabled=not args.no_progress) as progress:
                    res = evaluate_model(model=args.model, weights=args.weights, data=args.data, gt=args.gt,
                                         out_dir=args.out, iou_thresh=args.iou, progress=progress)
            except NotImplementedError as e:
                raise ValueError(str(e)) from None
    for w in caught:
        print(f"pyddsar eval: warning: {w.message}", file=sys.stderr)
    if args.out:  # each file written atomically (a temporary beside it, renamed over it)
        os.makedirs(args.out, exist_ok=True)
        write_pr_plot(os.path.join(args.out, "pr_curves.png"), res)
        write_ap_json(os.path.join(args.out, "ap.json"), res)
    if args.json:
        print(json.dumps(res.to_dict()))
    else:
        print(res)
    return 0


def add_parser(sub) -> None:
    e = sub.add_parser("eval", help="WIDER Face Easy/Medium/Hard AP (reference evaluation, vectorised)")
    e.add_argument("--predictions", help="folder of official prediction files event/image_name.txt")
    e.add_argument("--model", help="detector preset (runs the detector; needs --weights and --data)")
    e.add_argument("--weights", help="model weights (.onnx or pyddsar file)")
    e.add_argument("--data", help="dataset folder whose val images are detected")
    e.add_argument("--gt", required=True, help="folder with wider_face_val.mat and wider_{easy,medium,hard}_val.mat")
    e.add_argument("--out", help="folder for pr_curves.png and ap.json")
    e.add_argument("--iou", type=float, default=0.5, help="IoU threshold (default 0.5)")
    e.add_argument("--json", action="store_true")
    _progress.add_flag(e, "no progress bar on stderr while detecting")
    e.set_defaults(func=_cmd_eval)
