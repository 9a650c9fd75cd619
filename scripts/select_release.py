"""Choose between candidate generators of one factor on a selection set of their own.

A release candidate is adopted or not on data that no model trains on and that no card
or study reports as skill: synthetic boxes of seeds of their own (8000-8049) and, since
2026-12-08, one real-world field, an ocean model's surface temperature averaged to 2
degrees (``pop.nc`` from NCL's data, see ``build_training_data.pop_truth``; inputs at
``2 * factor`` degrees, like the real records). The held-out data of
``scripts/model_card.py`` and ``benchmarks/training_study.py`` stays for reporting, never
for choosing::

    python scripts/select_release.py sst-x4 /tmp/candidate/sst-x4.safetensors

Prints, per candidate, the pooled RMSE over the boxes (cell-area weighted, ocean cells)
and its ratio to bicubic's, the mean over boxes of each box's ratio (energetic boxes
dominate the pooled one), the pooled ratios on the warmest 1 % of each box's truth
cells and in the open ocean, the ratio on the ocean model's field, and the score that
chooses: the mean of the pooled synthetic ratio and the ocean model's (a synthetic-only
set preferred models that did worse on real records).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

import xsstsr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_training_data import box, pop_truth
from model_card import fields_for, pooled, record_sums

SELECTION_SEEDS = tuple(range(8000, 8050))


def selection_scores(model: xsstsr.Model, seeds: tuple[int, ...] = SELECTION_SEEDS) -> dict:
    sums = [record_sums(fields_for(model, box(seed, model.factor))) for seed in seeds]
    table = pooled(sums)
    ratio = table.loc["model"] / table.loc["bicubic"]
    # each box's own ratio, averaged: quiet boxes count as much as energetic ones
    per_box = [pooled([one]).loc[["model", "bicubic"], "rmse all"] for one in sums]
    return {
        "rmse": table.loc["model", "rmse all"],
        "rmse/bicubic": ratio["rmse all"],
        "box mean rmse/bicubic": sum(r["model"] / r["bicubic"] for r in per_box) / len(per_box),
        "warm 1%/bicubic": ratio["rmse warm 1%"],
        "open/bicubic": ratio["rmse open"],
        "bias": table.loc["model", "bias"],
    }


def real_scores(model: xsstsr.Model) -> dict:
    table = pooled([record_sums(fields_for(model, pop_truth(model.factor)))])
    ratio = table.loc["model"] / table.loc["bicubic"]
    return {"pop rmse/bicubic": ratio["rmse all"], "pop warm 1%/bicubic": ratio["rmse warm 1%"]}


def scores(model: xsstsr.Model) -> dict:
    out = {**selection_scores(model), **real_scores(model)}
    out["score"] = (out["rmse/bicubic"] + out["pop rmse/bicubic"]) / 2
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="registry names or safetensors paths")
    args = parser.parse_args()
    rows = {}
    for name in args.models:
        rows[name] = scores(xsstsr.load_model(name))
        print(name, rows[name], flush=True)
    print(pd.DataFrame(rows).T.to_markdown(floatfmt=".4f"))


if __name__ == "__main__":
    main()
