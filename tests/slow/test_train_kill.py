"""`lsr train` killed with SIGKILL mid-run and started again resumes from its last checkpoint and ends with the
same weights, bit for bit, as the same command run without interruption (same seed, one thread, fresh processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from tests.eval_data import REPO, beir_folder

ARGS = ["--split", "test", "--epochs", "3", "--batch-size", "4", "--doc-max-length", "32", "--query-max-length", "16",
        "--dev-fraction", "0.25", "--dev-depth", "3", "--negative-depth", "5", "--checkpoint-every", "1",
        "--threads", "1"]


def lsr_train(folder, out, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lsr", "train", "-d", str(folder), "-o", str(out), *ARGS],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_then_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, ir_datasets_home):
    folder = beir_folder("scifact", tmp_path / "scifact-16", n_queries=16, n_other=40)
    env = {**os.environ, "IR_DATASETS_HOME": str(ir_datasets_home)}
    whole = lsr_train(folder, tmp_path / "whole", env)
    assert whole.wait(timeout=900) == 0, whole.stderr.read()

    killed = lsr_train(folder, tmp_path / "killed", env)
    ckpt = tmp_path / "killed" / ".train" / "checkpoint.pt"
    deadline = time.monotonic() + 600
    while not ckpt.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)   # during step 2 or later of 9: the first checkpoint is on disk
    assert killed.wait(timeout=60) == -signal.SIGKILL, "the run finished before it could be killed"
    done = torch.load(ckpt, weights_only=False)["step"]
    assert 1 <= done < 9
    resumed = lsr_train(folder, tmp_path / "killed", env)
    assert resumed.wait(timeout=900) == 0, resumed.stderr.read()

    want, got = load_file(str(tmp_path / "whole" / "model.safetensors")), load_file(str(tmp_path / "killed" /
                                                                                        "model.safetensors"))
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    a, b = (json.loads((tmp_path / d / "training.json").read_text()) for d in ("whole", "killed"))
    assert a["dev"] == b["dev"] and a["chosen"] == b["chosen"]
