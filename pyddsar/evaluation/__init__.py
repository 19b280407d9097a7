"""Evaluation: WIDER Face Easy / Medium / Hard AP (see :mod:`pyddsar.evaluation.widerface`)."""

from .widerface import (  # noqa: F401
    SUBSETS,
    WiderEvalResult,
    WiderGroundTruth,
    evaluate,
    evaluate_model,
    iou_plus_one,
    load_ground_truth,
    read_predictions,
    write_pr_plot,
    write_predictions,
)
