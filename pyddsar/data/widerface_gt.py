"""WIDER Face ground-truth readers (SPEC section 5): ``wider_face_val.mat``, the official
``wider_face_{train,val}_bbx_gt.txt`` and the RetinaFace / SCRFD ``label.txt``.

Every reader returns a list of :class:`GroundTruthImage` with boxes as ``(x1, y1, x2, y2)`` float64
arrays (``x2 = x + w``, ``y2 = y + h``), in file order. Only ``label.txt`` files whose ``#`` lines carry
``width height`` after the path give image sizes; the other formats give ``image_size=None``.
Malformed files raise :class:`ValueError` naming the file and line. numpy (and scipy for .mat) only.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

__all__ = ["GroundTruthImage", "read_gt", "read_mat", "read_txt", "read_label", "detect_format"]

FORMATS = ("auto", "mat", "txt", "label")


@dataclass(frozen=True)
class GroundTruthImage:
    path: str  # "event/name" (mat: "event/file_name" without extension)
    boxes: np.ndarray  # [M, 4] float64, (x1, y1, x2, y2)
    image_size: Optional[Tuple[int, int]] = None  # (width, height) when the file gives it
    landmarks: Optional[np.ndarray] = None  # [M, 5, 2] float64 (label.txt only); NaN where missing
    invalid: Optional[np.ndarray] = None  # [M] bool: the official txt's 'invalid' flag (txt only)


def _xywh_to_xyxy(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([a[:, :2], a[:, :2] + a[:, 2:4]], axis=1)


_LOAD_MAT = """
import pickle, sys
import scipy.io
try:
    data = scipy.io.loadmat(sys.argv[1])
except MemoryError:
    raise
except Exception as e:
    sys.stderr.write(f"{type(e).__name__}: {e}")
    sys.exit(3)
sys.stdout.buffer.write(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
"""


def load_mat(path: str) -> dict:
    """scipy's ``loadmat`` in a child process, every failure a ValueError. A damaged file makes
    scipy 1.17's MAT5 reader raise almost anything (zlib.error, IndexError, UnboundLocalError) or
    crash the process with a segmentation fault (found by tests/test_fuzz.py), so it runs apart;
    files already read (same size and modification time) come from a cache."""
    if not os.path.isfile(path):
        raise ValueError(f"ground-truth file not found: {path}")
    st = os.stat(path)
    return _load_mat_cached(os.path.abspath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _load_mat_cached(path: str, size: int, mtime_ns: int) -> dict:
    import pickle
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _LOAD_MAT, path], capture_output=True, timeout=600)
    if r.returncode < 0:
        raise ValueError(f"{path}: scipy's MATLAB reader crashed on it (signal {-r.returncode}): a damaged file")
    if r.returncode:
        detail = r.stderr.decode(errors="replace").strip().splitlines()
        raise ValueError(f"{path}: not a readable MATLAB file ({detail[-1] if detail else 'no detail'})")
    return pickle.loads(r.stdout)


def read_mat(path: str) -> List[GroundTruthImage]:
    """``wider_face_val.mat`` (keys ``event_list``, ``file_list``, ``face_bbx_list``)."""
    m = load_mat(path)
    for key in ("event_list", "file_list", "face_bbx_list"):
        if key not in m:
            raise ValueError(f"{path}: no '{key}' entry; expected WIDER's wider_face_*.mat")
    out = []
    events, files, boxes = m["event_list"], m["file_list"], m["face_bbx_list"]
    try:
        for e in range(len(events)):
            event = str(events[e][0][0])
            names, bbx = files[e][0], boxes[e][0]
            if len(names) != len(bbx):
                raise ValueError(f"{path}: event {event} has {len(names)} files but {len(bbx)} box lists")
            for i in range(len(names)):
                out.append(GroundTruthImage(f"{event}/{names[i][0][0]}", _xywh_to_xyxy(np.asarray(bbx[i][0], float))))
    except (IndexError, TypeError, KeyError) as e:
        raise ValueError(f"{path}: not laid out as WIDER's wider_face_*.mat ({type(e).__name__}: {e})") from None
    return out


def _lines(path: str) -> List[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return [ln.strip() for ln in f]
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file") from None


def _numbers(line: str, path: str, lineno: int, at_least: int) -> List[float]:
    try:
        vals = [float(v) for v in line.split()]
    except ValueError:
        raise ValueError(f"{path}:{lineno}: expected numbers, got {line!r}") from None
    if len(vals) < at_least:
        raise ValueError(f"{path}:{lineno}: expected at least {at_least} numbers, got {line!r}")
    return vals


def read_txt(path: str) -> List[GroundTruthImage]:
    """The official ``wider_face_*_bbx_gt.txt``: a file name, a face count, then one
    ``x y w h blur expression illumination invalid occlusion pose`` line per face (a count of 0 is
    followed by one line of zeros)."""
    lines = _lines(path)
    out, i = [], 0
    while i < len(lines):
        name = lines[i]
        if not name:
            i += 1
            continue
        if i + 1 >= len(lines):
            raise ValueError(f"{path}:{i + 1}: {name!r} has no face count")
        try:
            count = int(lines[i + 1])
        except ValueError:
            raise ValueError(f"{path}:{i + 2}: expected a face count after {name!r}, got {lines[i + 1]!r}") from None
        if count < 0:
            raise ValueError(f"{path}:{i + 2}: negative face count {count}")
        rows = max(count, 1)
        if i + 2 + rows > len(lines):
            raise ValueError(f"{path}:{i + 2}: {name!r} announces {count} faces but the file ends")
        rows_ = [_numbers(lines[i + 2 + k], path, i + 3 + k, 4) for k in range(count)]
        faces = [r[:4] for r in rows_]
        invalid = np.array([len(r) >= 8 and r[7] != 0 for r in rows_], dtype=bool)
        name = name[:-4] if name.lower().endswith(".jpg") else name
        out.append(GroundTruthImage(name, _xywh_to_xyxy(np.array(faces).reshape(-1, 4)), invalid=invalid))
        i += 2 + rows
    return out


def _landmarks(vals: List[float], path: str, lineno: int) -> np.ndarray:
    """Five (x, y) points after the box: RetinaFace writes ``x y flag`` triples (15 numbers, often a
    trailing confidence), some tools plain ``x y`` pairs (10 numbers). A point written as all -1
    (SCRFD's retinaface.py:54 gives it weight 0) is missing and becomes NaN; every other point keeps
    its coordinates, negative or not."""
    rest = vals[4:]
    if len(rest) >= 15:
        triples = np.array(rest[:15]).reshape(5, 3)
        pts, missing = triples[:, :2].copy(), (triples == -1).all(axis=1)
    elif len(rest) in (10, 11):
        pts = np.array(rest[:10]).reshape(5, 2)
        missing = (pts == -1).all(axis=1)
    elif len(rest) <= 1:  # a box, perhaps with a score: no landmarks
        return np.full((5, 2), np.nan)
    else:
        raise ValueError(f"{path}:{lineno}: expected 'x y w h' then 5 landmarks as 15 numbers (x y flag) or "
                         f"10 (x y), got {len(rest)} numbers after the box")
    if not np.isfinite(pts).all():
        raise ValueError(f"{path}:{lineno}: landmarks must be finite numbers (-1 -1 -1 for a missing point)")
    pts[missing] = np.nan
    return pts


def read_label(path: str) -> List[GroundTruthImage]:
    """RetinaFace / SCRFD ``label.txt``: ``# path [width height]`` then one line per face starting
    with ``x y w h``, then optionally 5 landmarks (``x y flag`` x 5, or ``x y`` x 5; a trailing
    confidence is ignored); ``landmarks`` are NaN where a face has none (points written as -1)."""
    lines = _lines(path)
    out: List[GroundTruthImage] = []
    name, size, faces, kps = None, None, [], []

    def flush():
        if name is not None:
            lm = np.array(kps, dtype=np.float64).reshape(-1, 5, 2)
            out.append(GroundTruthImage(name, _xywh_to_xyxy(np.array(faces).reshape(-1, 4)), size, landmarks=lm))

    for lineno, line in enumerate(lines, 1):
        if not line:
            continue
        if line.startswith("#"):
            flush()
            parts = line[1:].split()
            if not parts:
                raise ValueError(f"{path}:{lineno}: '#' line without an image path")
            name, size, faces, kps = parts[0], None, [], []
            if len(parts) >= 3:
                try:
                    size = (int(parts[1]), int(parts[2]))
                except ValueError:
                    raise ValueError(f"{path}:{lineno}: expected '# path width height', got {line!r}") from None
                if size[0] <= 0 or size[1] <= 0:
                    raise ValueError(f"{path}:{lineno}: image size must be positive, got {size}")
            name = name[:-4] if name.lower().endswith(".jpg") else name
        else:
            if name is None:
                raise ValueError(f"{path}:{lineno}: a face line before any '# path' line")
            vals = _numbers(line, path, lineno, 4)
            faces.append(vals[:4])
            kps.append(_landmarks(vals, path, lineno))
    flush()
    return out


def detect_format(path: str) -> str:
    """'mat' for MATLAB files, 'label' when the first non-empty line starts with '#', else 'txt'."""
    if path.lower().endswith(".mat"):
        return "mat"
    try:
        with open(path, "rb") as f:
            head = f.read(128)
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from None
    if head.startswith(b"MATLAB"):
        return "mat"
    return "label" if head.lstrip().startswith(b"#") else "txt"


def read_gt(path: str, format: str = "auto") -> List[GroundTruthImage]:
    """Read WIDER ground truth in any of the three formats (``format="auto"`` guesses it)."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if not os.path.exists(path):
        raise ValueError(f"ground-truth file not found: {path}")
    fmt = detect_format(path) if format == "auto" else format
    return {"mat": read_mat, "txt": read_txt, "label": read_label}[fmt](path)
