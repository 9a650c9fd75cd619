"""Data-parallel fit under torchrun (gloo, 2 CPU processes) equals one process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import xsstsr
from xsstsr.datasets import synthetic_sst

ARGS = dict(
    epochs=1,
    steps_per_epoch=3,
    batch_size=4,
    patch_size=8,
    n_critic=2,
    progress=False,
    seed=5,
    device="cpu",
    validation=0.0,
    adv_weight=1e-3,
    lr=1e-3,
    warmup=0,
    validate_every=3,  # one validation at the end: it improves on the start, so it is kept
    init=None,  # from scratch: the check must not depend on the released weights
)

SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    import torch.distributed as dist
    import xsstsr
    from xsstsr.datasets import synthetic_sst

    torch.set_num_threads(1)
    truth = synthetic_sst(48, 48, periods=12, seed=3, land=False)
    model = xsstsr.fit(truth, **{args!r})
    if dist.get_rank() == 0:
        model.save(sys.argv[1])
    dist.destroy_process_group()
    """
)


@pytest.mark.distributed
def test_torchrun_two_processes_matches_one(tmp_path: Path) -> None:

    script = tmp_path / "ddp_fit.py"
    script.write_text(SCRIPT.format(args=ARGS))
    out = tmp_path / "ddp.safetensors"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    parallel = xsstsr.load_model(out)
    assert parallel.metadata["training"]["processes"] == 2

    truth = synthetic_sst(48, 48, periods=12, seed=3, land=False)  # one thread (conftest)
    single = xsstsr.fit(truth, **ARGS)
    assert single.metadata["training"]["processes"] == 1
    assert single.validation is not None
    assert single.validation["step"] == parallel.validation["step"] == 3
    for key, value in single.state.items():
        np.testing.assert_allclose(parallel.state[key], value, atol=2e-5, rtol=0, err_msg=key)
    # the run did train: weights moved away from their initial values
    init = xsstsr.models.init_model(single.metadata, seed=5)
    moved = max(float(np.abs(single.state[k] - init.state[k]).max()) for k in single.state)
    assert moved > 1e-4
