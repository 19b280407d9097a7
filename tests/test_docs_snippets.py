"""Every ```python block in README.md and docs/*.md runs as written (each file's blocks in order, in one
fresh interpreter, in an empty folder, so files a snippet writes land there)."""

import os
import re
import subprocess
import sys

import pytest

import pyddsar

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md"] + sorted(os.path.join("docs", f) for f in os.listdir(os.path.join(REPO, "docs")) if f.endswith(".md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: str):
    return BLOCK.findall(open(os.path.join(REPO, path), encoding="utf-8").read())


def test_the_extraction_finds_the_snippets():
    assert len(python_blocks("README.md")) >= 1
    assert sum(len(python_blocks(p)) for p in DOCS) >= 5
    assert python_blocks("README.md")[0].lstrip().startswith("import pyddsar")


@pytest.mark.parametrize("path", [p for p in DOCS if python_blocks(p)])
def test_python_snippets_run_as_written(path, tmp_path):
    code = "\n\n".join(python_blocks(path))
    # the snippets import the same pyddsar this test run imported (the installed one under plain `pytest`,
    # the source tree with its built module under `python -m pytest`), never a tree without _core
    here = os.path.dirname(os.path.dirname(os.path.abspath(pyddsar.__file__)))
    env = dict(os.environ, PYTHONPATH=here + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, f"{path}: a snippet failed:\n{r.stderr[-3000:]}"
