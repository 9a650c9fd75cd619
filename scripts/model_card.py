"""Measure the released models on held-out data and write the tables of weights/MODEL_CARD.md.

    python scripts/model_card.py            # every released model, writes weights/MODEL_CARD.md
    python scripts/model_card.py --print    # print the tables only

Held-out synthetic data: seeds, boxes and years that scripts/train_release.py never used.
Held-out real data: NOAA's COADS SST climatology and the World Ocean Atlas surface
temperature from Debian's ``ferret-datasets`` (public domain; the real rows are skipped
when the package is absent). Their 2-degree fields are the truth; the inputs are their area
averages by the factor. The models were trained at 0.25/factor degrees, so the real rows
also show how they carry over to a much coarser scale. Each score is given for the model,
bicubic interpolation and nearest-neighbour interpolation on the same cells.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import xsstsr
from xsstsr.datasets import coarsen_truth, synthetic_sst, synthetic_stations

ROOT = Path(__file__).resolve().parent.parent
CARD = ROOT / "weights" / "MODEL_CARD.md"
BEGIN, END = "<!-- skill-table:begin -->", "<!-- skill-table:end -->"
HELD_OUT = ((901, (18, 128)), (902, (-36, 20)), (903, (40, 150)))  # seed, (lat0, lon0)
BOX = 12.0


def _score(
    model: xsstsr.Model,
    truth: xr.Dataset,
    stations: pd.DataFrame | None,
    factor: float,
) -> pd.DataFrame:
    coarse = coarsen_truth(truth, factor)
    high = coarse.sstsr.downscale(model=model, device="cpu")
    table = xsstsr.evaluate(
        high,
        truth=truth,
        stations=stations,
        coarse=coarse,
        baseline=["bicubic", "nearest"],
        by=None,
    )
    return table[table["region"] == "all"]


def synthetic_skill(model: xsstsr.Model) -> pd.DataFrame:
    factor = model.factor
    n = round(BOX / (0.25 / factor))
    parts = []
    for i, (seed, (lat0, lon0)) in enumerate(HELD_OUT):
        truth = synthetic_sst(
            n,
            n,
            lat_range=(lat0, lat0 + BOX),
            lon_range=(lon0, lon0 + BOX),
            start=f"{2031 + i}-07-01",
            periods=30,
            seed=seed,
        )
        stations = synthetic_stations(truth, n=16, noise=0.1, seed=seed)
        parts.append(_score(model, truth, stations, factor))
    return _pool(pd.concat(parts), "synthetic (3 held-out boxes x 30 days)")


def real_skill(model: xsstsr.Model) -> pd.DataFrame | None:
    from xsstsr.datasets import open_coads_sst, open_ocean_atlas

    factor = model.factor
    parts = []
    try:
        sources = [("COADS", open_coads_sst()), ("WOA surface", open_ocean_atlas(depth=0))]
    except FileNotFoundError:
        return None
    for _, ds in sources:
        da = ds[next(iter(ds.data_vars))]
        if "depth" in da.dims:
            da = da.isel(depth=0, drop=True)
        step = round(factor * 2) if factor != int(factor) else int(factor)
        da = da.sel(lat=slice(-60, 60))  # drop sea ice, where SST is pinned at freezing
        da = da.isel(
            lat=slice(0, da.sizes["lat"] - da.sizes["lat"] % step),
            lon=slice(0, da.sizes["lon"] - da.sizes["lon"] % step),
        )
        parts.append(_score(model, da.to_dataset(name="sst"), None, factor))
    return _pool(pd.concat(parts), "real (COADS + WOA, 2-degree truth)")


def _pool(table: pd.DataFrame, data: str) -> pd.DataFrame:
    """Pool per-part scores: RMSEs by mean square weighted by n, bias by weighted mean."""
    rows = []
    for (source, against), group in table.groupby(["source", "against"], sort=False):
        w = group["n"].to_numpy(dtype=float)
        we = group["n_extremes"].to_numpy(dtype=float)
        rows.append(
            {
                "data": data,
                "against": against,
                "source": source,
                "rmse": float(np.sqrt(np.average(group["rmse"] ** 2, weights=w))),
                "bias": float(np.average(group["bias"], weights=w)),
                "rmse_warmest_1pct": float(
                    np.sqrt(np.average(group["rmse_extremes"] ** 2, weights=np.maximum(we, 1e-9)))
                ),
                "n": int(w.sum()),
            }
        )
    return pd.DataFrame(rows)


def _markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def card_tables(models: list[str]) -> str:
    out = []
    for name in models:
        model = xsstsr.load_model(name)
        training = model.metadata.get("training", {})
        storage = model.metadata.get("storage", {})
        frames = [synthetic_skill(model)]
        real = real_skill(model)
        if real is not None:
            frames.append(real)
        table = pd.concat(frames)
        grid = table[table["against"] == "grid"]
        ratio = {}
        for data, group in grid.groupby("data", sort=False):
            by = group.set_index("source")
            ratio[data] = by.loc["downscaled", "rmse"] / by.loc["bicubic", "rmse"]
        out.append(f"### {name}\n")
        out.append(
            f"- sha256 `{xsstsr.weights.registry()[name + '.safetensors']}`; factor "
            f"{model.factor:g}, window {model.window}, halo {model.halo}, inputs {model.inputs}\n"
            f"- training data: {training.get('data', 'n/a')}\n"
            f"- loss: {training.get('loss')}, adversarial weight {training.get('adv_weight')}, "
            f"n_critic {training.get('n_critic')}, {training.get('steps')} steps of batch "
            f"{training.get('batch_size')} (patches of {training.get('patch_size')} cells), "
            f"lr {training.get('lr')} ({training.get('lr_schedule')}), seed "
            f"{training.get('seed')}\n"
            f"- hardware: {training.get('hardware', 'n/a')}; wall time "
            f"{training.get('wall_time_s', 'n/a')} s; torch {training.get('torch_version')}\n"
            f"- storage: {storage.get('precision', 'float32')}, max |float16 - float32| on a "
            f"held-out field: {storage.get('max_abs_error_K', float('nan')):.2e} K\n"
            + "".join(f"- RMSE / bicubic RMSE, {k}: **{v:.3f}**\n" for k, v in ratio.items())
        )
        shown = table.copy()
        for col in ("rmse", "bias", "rmse_warmest_1pct"):
            shown[col] = shown[col].map(lambda v: f"{v:.4f}")
        out.append(_markdown(shown))
        out.append("\n")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print, do not write the card")
    parser.add_argument("--models", nargs="*", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    text = card_tables(args.models or xsstsr.available_models())
    if args.print:
        print(text)
        return
    card = CARD.read_text()
    head, _, rest = card.partition(BEGIN)
    _, _, tail = rest.partition(END)
    CARD.write_text(f"{head}{BEGIN}\n\n{text}\n{END}{tail}")
    print(f"updated {CARD}")


if __name__ == "__main__":
    main()
