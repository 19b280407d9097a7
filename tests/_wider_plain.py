"""A plain, loop-by-loop statement of the WIDER Face evaluation procedure (the behaviour of the
reference script RetinaFace users run), written for the tests only; no vectorisation."""

import numpy as np


def plain_iou(p, g):
    """p, g: x1 y1 x2 y2 (one box each), +1 pixel convention, 0 unless both overlaps are positive."""
    iw = min(p[2], g[2]) - max(p[0], g[0]) + 1
    if iw <= 0:
        return 0.0
    ih = min(p[3], g[3]) - max(p[1], g[1]) + 1
    if ih <= 0:
        return 0.0
    union = (p[2] - p[0] + 1) * (p[3] - p[1] + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - iw * ih
    return iw * ih / union


def plain_ap(per_image_preds, gt_boxes, keep_lists, iou_thresh=0.5, thresh_num=1000):
    """per_image_preds: list of [N,5] x y w h score (already score-normalised) or None;
    gt_boxes: list of [M,4] x y w h; keep_lists: list of 0-based index arrays. Returns (ap, prec, rec)."""
    pr = np.zeros((thresh_num, 2))
    count_face = 0
    for preds, gts, keep in zip(per_image_preds, gt_boxes, keep_lists):
        count_face += len(keep)
        if preds is None or len(preds) == 0 or len(gts) == 0:
            continue
        kept = [False] * len(gts)
        for k in keep:
            kept[int(k)] = True
        state = [0] * len(gts)  # 0 untouched, 1 recalled, -1 matched while ignored
        proposal = [1] * len(preds)
        recalled_so_far = [0] * len(preds)
        for h in range(len(preds)):
            x, y, w, hh = preds[h][:4]
            pb = (x, y, x + w, y + hh)
            best_iou, best_j = -1.0, 0
            for j in range(len(gts)):
                gx, gy, gw, gh = gts[j]
                v = plain_iou(pb, (gx, gy, gx + gw, gy + gh))
                if v > best_iou:
                    best_iou, best_j = v, j
            if best_iou >= iou_thresh:
                if not kept[best_j]:
                    state[best_j] = -1
                    proposal[h] = -1
                elif state[best_j] == 0:
                    state[best_j] = 1
            recalled_so_far[h] = sum(1 for s in state if s == 1)
        for t in range(thresh_num):
            thr = 1 - (t + 1) / thresh_num
            last = -1
            for h in range(len(preds)):
                if preds[h][4] >= thr:
                    last = h
            if last >= 0:
                pr[t, 0] += sum(1 for q in proposal[: last + 1] if q == 1)
                pr[t, 1] += recalled_so_far[last]
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = pr[:, 1] / pr[:, 0]
        rec = pr[:, 1] / count_face
    # VOC AP with the precision envelope
    mrec = [0.0] + list(rec) + [1.0]
    mpre = [0.0] + list(prec) + [0.0]
    for i in range(len(mpre) - 1, 0, -1):
        mpre[i - 1] = float(np.maximum(mpre[i - 1], mpre[i]))
    ap = 0.0
    for i in range(len(mrec) - 1):
        if mrec[i + 1] != mrec[i]:
            ap += (mrec[i + 1] - mrec[i]) * mpre[i + 1]
    return ap, prec, rec


def plain_normalise(preds):
    """Score normalisation over every image: lo = min(1, min score), hi = max(0, max score)."""
    lo, hi = 1.0, 0.0
    for v in preds.values():
        for row in v:
            lo = min(lo, row[4])
            hi = max(hi, row[4])
    out = {}
    for k, v in preds.items():
        v = np.array(v, dtype=np.float64).reshape(-1, 5).copy()
        for row in v:
            row[4] = (row[4] - lo) / (hi - lo)
        out[k] = v
    return out
