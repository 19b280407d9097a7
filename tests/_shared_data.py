"""Where the tests find the shared data (WIDER val ground truth, SCRFD ONNX files, real photos):
``$PYDDSAR_DATA``, else ``../shared/data`` beside the project root; never an absolute path."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data_dir() -> str:
    return os.environ.get("PYDDSAR_DATA") or os.path.join(REPO, "..", "shared", "data")


def data_path(*parts: str) -> str:
    return os.path.join(data_dir(), *parts)
