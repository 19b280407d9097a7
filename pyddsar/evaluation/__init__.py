"""Evaluation: WIDER Face Easy / Medium / Hard AP (see :mod:`pyddsar.evaluation.widerface`)."""

from .widerface import (  # noqa: F401
    SUBSETS,
    WiderEvalResult,
    WiderGroundTruth,
    evaluate,
    iou_plus_one,
    load_ground_truth,
    read_predictions,
    write_ap_json,
    write_pr_plot,
    write_predictions,
)
from .model_eval import evaluate_model  # noqa: F401,E402

__all__ = ["SUBSETS", "WiderEvalResult", "WiderGroundTruth", "evaluate", "evaluate_model", "iou_plus_one",
           "load_ground_truth", "read_predictions", "write_ap_json", "write_pr_plot", "write_predictions"]
