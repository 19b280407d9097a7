"""`pyddsar export --weights FILE --out FILE.onnx [--model NAME] [--insightface | --postprocess]
[--input-size 640] [--fixed]`: write a detector as ONNX.

``--insightface`` writes a file insightface's ``SCRFD`` / ``FaceAnalysis`` load unchanged (put it in a
model-pack folder in place of ``det_10g.onnx``); ``--postprocess`` writes pyddsar's deployment file with
decoding and NMS in the graph (docs/deploy.md); neither: the raw outputs with pyddsar's defaults.
``--weights`` is anything ``pyddsar detect`` takes (a model file, an insightface SCRFD .onnx, a
checkpoint with ``--model``).
"""

from __future__ import annotations

import os


def _cmd_export(args) -> int:
    from ..model_file import load_model
    from ..onnx_export import export_onnx

    if args.insightface and args.postprocess:
        raise ValueError("give --insightface or --postprocess, not both (insightface decodes raw outputs itself)")
    if args.input_size <= 0 or args.input_size % 32:
        raise ValueError(f"--input-size must be a positive multiple of 32, got {args.input_size}")
    if os.path.exists(args.out) and not args.force:
        raise ValueError(f"{args.out} exists; give --force to overwrite it")
    model, _ = load_model(args.weights, args.model)
    path = export_onnx(model, args.out, dynamic=not args.fixed, postprocess=args.postprocess,
                       input_size=(args.input_size, args.input_size),
                       target="insightface" if args.insightface else "pyddsar")
    kind = "insightface SCRFD layout" if args.insightface else ("with post-processing" if args.postprocess else "raw outputs")
    print(f"wrote {path} ({model.config.name}, {kind}, input {'fixed ' if args.fixed else 'dynamic, example '}"
          f"{args.input_size}x{args.input_size}; checked with onnxruntime)")
    return 0


def add_parser(sub) -> None:
    e = sub.add_parser("export", help="write a detector as ONNX (pyddsar's layout, insightface's drop-in, or with NMS)")
    e.add_argument("--weights", required=True, help="pyddsar model file, insightface SCRFD .onnx or checkpoint")
    e.add_argument("--model", default=None, help="preset the weights must match (needed for plain checkpoints)")
    e.add_argument("--out", required=True, help="the .onnx file to write")
    e.add_argument("--insightface", action="store_true",
                   help="a file insightface's SCRFD / FaceAnalysis load unchanged (drop-in for det_10g.onnx)")
    e.add_argument("--postprocess", action="store_true", help="decoding, top-k and NMS inside the graph")
    e.add_argument("--input-size", type=int, default=640, help="example (or, with --fixed, the) input side")
    e.add_argument("--fixed", action="store_true", help="a fixed input size instead of dynamic batch / height / width")
    e.add_argument("--force", action="store_true", help="overwrite --out")
    e.set_defaults(func=_cmd_export)
