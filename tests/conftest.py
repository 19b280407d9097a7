"""Shared test fixtures."""

import os
import subprocess
import sys

import pytest

import pyddsar


@pytest.fixture
def run_python(tmp_path):
    """Run `python args...` in a fresh interpreter that imports the same pyddsar as the tests, from a
    directory outside the source tree (so an unbuilt in-tree copy can never shadow it)."""
    site = os.path.dirname(os.path.dirname(os.path.abspath(pyddsar.__file__)))

    def run(*args, check=True, popen=False, **kw):
        env = dict(os.environ, PYTHONPATH=site)
        cmd = [sys.executable, *args]
        if popen:
            return subprocess.Popen(cmd, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
        return subprocess.run(cmd, cwd=tmp_path, env=env, text=True, capture_output=True, check=check, **kw)

    return run
