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

    def run(*args, check=True, popen=False, pythonpath=(), **kw):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([*map(str, pythonpath), site]))
        cmd = [sys.executable, *args]
        if popen:
            return subprocess.Popen(cmd, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
        return subprocess.run(cmd, cwd=tmp_path, env=env, text=True, capture_output=True, check=check, **kw)

    return run


@pytest.fixture(scope="session")
def busy_head():
    """An untrained detector with torch's default predictor init (scores spread around 0.5): the
    package initialises the classifier at a 1 % face prior, so a random model detects nothing, but
    tests of post-processing need candidates everywhere."""

    def apply(model):
        for branch in model.head.branches:
            for conv in (branch.cls, branch.reg, branch.kps):
                if conv is not None:
                    conv.reset_parameters()  # uses torch's global generator: seed it before
        return model

    return apply
