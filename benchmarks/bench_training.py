"""Training throughput: generator steps per second, and the share of the machine's conv peak.

One table from one run. For each setting it fits a synthetic record twice:

* counting FLOPs with torch's own formulas (``torch.utils.flop_counter``) for ``k`` and
  ``2k`` steps, whose
  difference gives the FLOPs of one step (generator forward and backward, critic steps with
  the gradient penalty's double backward; validation and set-up cancel out);
* timed, from the history's per-step clock (``seconds``), over the steps after a warm-up,
  with the time the loop waited for the next batch (``data_wait_s``): the prefetching
  loader must keep it near zero.

The conv peak is the FLOP/s of one large 3 x 3 convolution on the same device
(``bench_downscale.conv_peak_flops``). Target on the CPU: >= 0.4 of it.

Usage::

    python benchmarks/bench_training.py                 # the table
    python benchmarks/bench_training.py --device cuda   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_downscale import conv_peak_flops

import xsstsr
from xsstsr.datasets import synthetic_sst

SETTINGS: list[dict[str, Any]] = [
    {"label": "defaults (batch 16, patch 24, n_critic 1)"},
    {"label": "n_critic 5", "n_critic": 5},
    {"label": "batch 32", "batch_size": 32},
]


def _fit(truth: Any, steps: int, device: str, options: dict[str, Any]) -> xsstsr.Model:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return xsstsr.fit(
            truth,
            steps=steps,
            validation=0.0,
            validate_every=steps,
            progress=False,
            device=device,
            **options,
        )


def _flop_counter() -> Any:
    """A dispatch mode adding up torch's own FLOP formulas (convolutions and their
    backward, matrix products). FlopCounterMode itself tracks modules with backward hooks,
    which the gradient penalty's ``autograd.grad`` does not support."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            packet = func._overloadpacket
            if packet in flop_registry:
                self.total += flop_registry[packet](*args, **kwargs, out_val=out)
            return out

    return Count()


def step_flops(truth: Any, steps: int, device: str, options: dict[str, Any]) -> float:
    counts = []
    for n in (steps, 2 * steps):
        counter = _flop_counter()
        with counter:
            _fit(truth, n, device, options)
        counts.append(counter.total)
    return (counts[1] - counts[0]) / steps


def timing(truth: Any, steps: int, device: str, options: dict[str, Any]) -> dict[str, float]:
    history = _fit(truth, steps, device, options).history
    history = history[history["step"] > 0]
    warm = max(1, steps // 5)
    clock = history["seconds"].to_numpy()
    per_step = (clock[-1] - clock[warm - 1]) / (len(clock) - warm)
    wait = float(history["data_wait_s"].to_numpy()[warm:].sum())
    return {"s_per_step": float(per_step), "wait_share": wait / float(clock[-1] - clock[warm - 1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per setting")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    truth = synthetic_sst(128, 128, periods=24, seed=0)
    peak = conv_peak_flops(args.device)
    rows = []
    for setting in SETTINGS:
        options = {k: v for k, v in setting.items() if k != "label"}
        flops = step_flops(truth, max(2, args.steps // 10), args.device, options)
        timed = timing(truth, args.steps, args.device, options)
        rate = flops / timed["s_per_step"]
        rows.append(
            {
                "setting": setting["label"],
                "gflop_per_step": flops / 1e9,
                "steps_per_s": 1.0 / timed["s_per_step"],
                "gflops": rate / 1e9,
                "of_peak": rate / peak,
                "data_wait_share": timed["wait_share"],
            }
        )
    print(f"device: {args.device}; peak 3x3 conv: {peak / 1e9:.1f} GFLOP/s\n")
    print("| setting | GFLOP / step | steps / s | GFLOP/s | of conv peak | waiting for data |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['setting']} | {r['gflop_per_step']:.2f} | {r['steps_per_s']:.2f} | "
            f"{r['gflops']:.1f} | {r['of_peak']:.2f} | {r['data_wait_share']:.1%} |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps({"peak_gflops": peak / 1e9, "rows": rows}, indent=1))
    return 0 if np.isfinite([r["of_peak"] for r in rows]).all() else 1


if __name__ == "__main__":
    sys.exit(main())
