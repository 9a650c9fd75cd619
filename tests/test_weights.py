"""Tests of xsstsr.models (safetensors round trip, metadata checks, network cache) and
the weights registry (, cache, pooch download from a real local HTTP server,
integrity checks and the shipped copy)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import pickle
import struct
import threading
import time
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pooch.core
import pytest
import torch
from cases_weights import Trickler, refused_url
from helpers import make_model, sst_field
from safetensors.numpy import save as st_save
from safetensors.torch import save as torch_save

import xsstsr
import xsstsr.models
from xsstsr._version import __version__
from xsstsr.inference import ModelRef, resolve_ref
from xsstsr.models import Model, Timeouts, download_timeouts, new_metadata
from xsstsr.models.metadata import read_header


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the Model file format -------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained() -> Model:
    model = make_model(4, 1, seed=3, name="trained-x4")
    model.history = pd.DataFrame(
        {
            "step": [0, 10, 20],
            "loss_g": [1.5, 0.75, 0.5],
            "val_rmse": [0.9, np.nan, 0.4],
            "phase": ["warmup", "gan", "gan"],  # not numeric: not stored
        }
    )
    return model


def test_save_load_round_trip(trained, tmp_path):
    path = trained.save(tmp_path / "m.safetensors")
    data = path.read_bytes()
    assert data == trained.to_bytes()
    assert trained.to_bytes() == trained.to_bytes()  # deterministic
    assert trained.sha256 == sha256(data)

    loaded = xsstsr.load_model(path)
    assert loaded.sha256 == trained.sha256 == xsstsr.models.weights.sha256_file(path)
    assert loaded.to_bytes() == data
    assert loaded.metadata == trained.metadata
    assert loaded.source == str(path.resolve())
    assert (loaded.factor, loaded.upsample, loaded.pool) == (4.0, 4, 1)
    assert (loaded.window, loaded.halo, loaded.inputs) == (3, trained.halo, ["sst"])
    assert loaded.normalisation == (15.0, 8.0)
    assert loaded.state.keys() == trained.state.keys()
    for key, value in trained.state.items():
        np.testing.assert_array_equal(loaded.state[key], value)
    expected = trained.history[["step", "loss_g", "val_rmse"]].astype("float64")
    pd.testing.assert_frame_equal(loaded.history, expected)

    again = Model.from_file(path)
    assert again.sha256 == trained.sha256
    assert Model.from_bytes(loaded.to_bytes()).to_bytes() == data

    half = Model.from_file(trained.save(tmp_path / "h.safetensors", precision="float16"))
    assert half.sha256 != trained.sha256
    for key, value in trained.state.items():
        np.testing.assert_allclose(half.state[key], value, rtol=1e-3, atol=1e-4)


def test_a_float16_file_stores_its_history_in_float32(trained):
    """Half the bytes for a long history; read back as float64 columns all the same."""
    history = pd.DataFrame({"step": np.arange(24000.0), "loss_g": np.linspace(1.0, 0.1, 24000)})
    model = Model(trained.state, trained.metadata, history=history)
    half, full = model.to_bytes("float16"), model.to_bytes("float32")
    stored = {data: read_header(data, "m")["__history__"]["dtype"] for data in (half, full)}
    assert (stored[half], stored[full]) == ("F32", "F64")
    loaded = Model.from_bytes(half).history
    assert list(loaded.dtypes) == [np.float64, np.float64]
    np.testing.assert_array_equal(loaded["step"], history["step"])  # exact below 2**24
    np.testing.assert_allclose(loaded["loss_g"], history["loss_g"], rtol=1e-7)
    pd.testing.assert_frame_equal(Model.from_bytes(full).history, history)


def resaved(model: Model, dtype: torch.dtype) -> bytes:
    """``model``'s file with its weights in ``dtype``, written by safetensors' torch API
    (torch rounds to bfloat16 to nearest even, as other writers do)."""
    tensors = {k: torch.from_numpy(v).to(dtype) for k, v in model.state.items()}
    return torch_save(tensors, metadata={"xsstsr": json.dumps(model.metadata)})


@pytest.mark.parametrize(
    ("dtype", "code"),
    [
        (torch.float16, "F16"),
        (torch.bfloat16, "BF16"),
        (torch.float32, "F32"),
        (torch.float64, "F64"),
    ],
    ids=["float16", "bfloat16", "float32", "float64"],
)
def test_weights_of_every_float_dtype_load(dtype, code, tmp_path):
    model = make_model(4, 1, seed=5, name="dtype-x4", small_halo=True, scale=0.05)
    data = resaved(model, dtype)
    (size,) = struct.unpack("<Q", data[:8])
    assert json.loads(data[8 : 8 + size])["head.weight"]["dtype"] == code
    path = tmp_path / f"{code}.safetensors"
    path.write_bytes(data)

    loaded = xsstsr.load_model(path)
    assert loaded.sha256 == sha256(data)
    for key, value in model.state.items():
        assert loaded.state[key].dtype == np.float32
        # exactly the stored numbers, widened: the bfloat16 bits are decoded without torch
        stored = torch.from_numpy(value).to(dtype).to(torch.float32).numpy()
        np.testing.assert_array_equal(loaded.state[key], stored)

    da = sst_field(nt=3, ny=12, nx=12)
    expected = xsstsr.downscale(da, model=model, device="cpu").values
    got = xsstsr.downscale(da, model=loaded, device="cpu").values
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    if code in ("F32", "F64"):  # float32 numbers survive float64 exactly
        np.testing.assert_array_equal(got, expected)
    else:  # the weights' rounding shows, within the dtype's epsilon (in K)
        diff = np.nanmax(np.abs(got - expected))
        assert 0 < diff <= torch.finfo(dtype).eps


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8, torch.bool])
def test_weights_of_other_dtypes_refused(trained, dtype):
    data = resaved(trained, dtype)
    with pytest.raises(xsstsr.WeightsError, match="must be floating point") as info:
        Model.from_bytes(data)
    assert not isinstance(info.value, xsstsr.MetadataError)


def test_float64_beyond_float32_refused_without_warning(trained):
    state = {k: v.astype("float64") for k, v in trained.state.items()}
    state["head.bias"][0] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from the cast
        with pytest.raises(xsstsr.WeightsError, match="beyond float32's range"):
            Model.from_bytes(raw(trained.metadata, state))


def test_file_is_safetensors_not_pickle(trained, tmp_path, monkeypatch):
    path = trained.save(tmp_path / "m.safetensors")
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    assert 8 + size < len(data)
    header = json.loads(data[8 : 8 + size])
    meta = json.loads(header["__metadata__"]["xsstsr"])
    assert meta["format"] == "xsstsr-generator"
    assert meta["name"] == "trained-x4"
    assert header["head.weight"]["dtype"] == "F32"
    assert not data.startswith((b"\x80", b"PK"))  # neither a pickle nor a torch zip

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle must not be used to read weights")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    assert xsstsr.load_model(path).sha256 == trained.sha256


@pytest.mark.parametrize("cut", [0, 7, 8, 40, "header", "half", -1], ids=lambda c: f"cut={c}")
def test_truncated_bytes(trained, cut):
    data = trained.to_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    end = {"header": 8 + size, "half": len(data) // 2}.get(cut, cut)
    with pytest.raises(xsstsr.WeightsError):
        Model.from_bytes(data[:end])


def test_corrupt_header(trained):
    data = bytearray(trained.to_bytes())
    data[8] = ord("x")  # the JSON header no longer parses
    with pytest.raises(xsstsr.WeightsError, match="corrupt"):
        Model.from_bytes(bytes(data))
    huge = struct.pack("<Q", 100 * 1024**2) + b"{}" + bytes(100)
    with pytest.raises(xsstsr.WeightsError):
        Model.from_bytes(huge)
    with pytest.raises(xsstsr.WeightsError, match="does not exist"):
        Model.from_file("/nonexistent/dir/model.safetensors")


def raw(metadata, state) -> bytes:
    """A safetensors file with arbitrary xsstsr metadata."""
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    return st_save(dict(state), metadata={"xsstsr": text})


def _edit(meta: dict, key: str, value) -> dict:
    meta = json.loads(json.dumps(meta))
    if value is _MISSING:
        meta.pop(key)
    elif key.startswith("architecture."):
        meta["architecture"][key.split(".", 1)[1]] = value
    elif key.startswith("normalisation."):
        meta["normalisation"][key.split(".", 1)[1]] = value
    else:
        meta[key] = value
    return meta


_MISSING = object()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("window", "3"),
        ("window", 3.0),
        ("window", 0),
        ("factor", True),
        ("factor", "4"),
        ("factor", 2.0),  # != upsample / pool
        ("upsample", 4.0),
        ("halo", -1),
        ("inputs", "sst"),
        ("inputs", [1]),
        ("format", "pytorch"),
        ("format_version", 99),
        ("name", ""),
        ("name", _MISSING),
        ("normalisation.std", 0),
        ("normalisation.mean", "15"),
        ("architecture.features", 32.5),
        ("architecture.type", "unet"),
        ("notes", "x" * (1024 * 1024 + 1)),  # over the 1 MB metadata limit
    ],
)
def test_bad_metadata(trained, key, value):
    data = raw(_edit(trained.metadata, key, value), trained.state)
    with pytest.raises(xsstsr.MetadataError):
        Model.from_bytes(data)


def test_format_version_follows_the_architecture(trained):
    """A model records the lowest format version that holds its features: plain models
    stay version 1 (readable by older builds), a local-scale model is version 2 (a
    version-1 file with it, from while the key was new, is read and re-saved as 2); a
    newer version or an architecture key this build does not know is refused, not ignored."""
    assert trained.metadata["format_version"] == 1
    plain = dict(name="n", upsample=4, pool=1, window=1, inputs=["sst"], mean=15.0, std=1.0)
    scaled = new_metadata(**plain, architecture={"scale_radius": 2})
    assert scaled["format_version"] == 2
    assert new_metadata(**plain, architecture={"scale_radius": 0})["format_version"] == 1
    assert new_metadata(**plain, format_version=2)["format_version"] == 1  # never a caller's
    model = make_model(4, 1, seed=3, architecture={"scale_radius": 2})
    assert model.metadata["format_version"] == 2
    early = Model.from_bytes(raw({**model.metadata, "format_version": 1}, model.state))
    assert Model.from_bytes(early.to_bytes()).metadata["format_version"] == 2
    newer = {**trained.metadata, "format_version": 3}
    with pytest.raises(xsstsr.MetadataError, match=r"format_version 3 .*newer.*pip install -U"):
        Model.from_bytes(raw(newer, trained.state))
    future = {
        **trained.metadata,
        "architecture": {**trained.metadata["architecture"], "dilation": 2},
    }
    with pytest.raises(xsstsr.MetadataError, match=r"does not know \(dilation\).*pip install -U"):
        Model.from_bytes(raw(future, trained.state))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("std", 1e-30, r"'std' is 1e-30, below the 0\.001 degC minimum"),
        ("std", 5e-324, r"'std' is 4\.94066e-324, .*subnormal"),
        ("std", 0.0, r"'std' is 0\.0; it must be a positive number"),
        ("std", -1.0, r"'std' is -1\.0; it must be a positive number"),
        ("std", 1e6, r"'std' is 1e\+06, above the 100 degC maximum"),
        ("mean", 1e6, r"'mean' is 1e\+06, far outside SST in degC \(-10\.\.50\)"),
        ("mean", -300.0, r"'mean' is -300, far outside SST in degC"),
        ("mean", 300.0, r"'mean' is 300, which is kelvin.*mean - 273\.15 = 26\.85"),
    ],
)
def test_implausible_normalisation_refused(trained, key, value, message):
    meta = _edit(trained.metadata, f"normalisation.{key}", value)
    fix = r"re-save the model with xsstsr\.model\.new_metadata\(mean=\.\.\., std=\.\.\.\)"
    with pytest.raises(xsstsr.MetadataError, match=message) as info:
        Model.from_bytes(raw(meta, trained.state))
    info.match(fix)
    with pytest.raises(xsstsr.MetadataError, match=message):
        Model(trained.state, meta)  # a model in memory is held to the same
    norm = {"mean": 15.0, "std": 8.0, key: value}
    with pytest.raises(xsstsr.MetadataError, match=message):  # and a fresh metadata
        new_metadata(name="n", upsample=4, pool=1, window=1, inputs=["sst"], **norm)


@pytest.mark.parametrize(("mean", "std"), [(-1.8, 0.02), (35.0, 5.0), (0.0, 1.0)])
def test_plausible_normalisation_loads(trained, mean, std):
    meta = _edit(trained.metadata, "normalisation", {"mean": mean, "std": std, "units": "degC"})
    assert Model.from_bytes(raw(meta, trained.state)).normalisation == (mean, std)


def test_precision_must_be_a_choice(trained, tmp_path):
    with pytest.raises(xsstsr.OptionError, match="precision='float16'") as info:
        trained.save(tmp_path / "m.safetensors", precision="bfloat16")
    assert isinstance(info.value, ValueError)
    assert not (tmp_path / "m.safetensors").exists()


def test_bad_metadata_json_and_state(trained):
    with pytest.raises(xsstsr.MetadataError, match="JSON"):
        Model.from_bytes(raw("{not json", trained.state))
    with pytest.raises(xsstsr.MetadataError):
        Model.from_bytes(raw("[1, 2]", trained.state))
    state = trained.state
    state.pop("head.weight")
    with pytest.raises(xsstsr.MetadataError, match=r"head\.weight"):
        Model.from_bytes(raw(trained.metadata, state))
    state = trained.state
    state["head.bias"] = np.zeros(3, dtype="float32")
    with pytest.raises(xsstsr.MetadataError, match="shape"):
        Model.from_bytes(raw(trained.metadata, state))
    state = trained.state
    state["head.bias"][0] = np.nan
    with pytest.raises(xsstsr.WeightsError, match="NaN"):
        Model.from_bytes(raw(trained.metadata, state))
    # nor is one made in memory: it would downscale to NaN ocean and save an unloadable file
    with pytest.raises(xsstsr.WeightsError, match=r"head\.bias.*NaN"):
        Model(state, trained.metadata)
    with pytest.raises(xsstsr.MetadataError):
        Model(trained.state, {**trained.metadata, "window": "3"})


def test_save_to_a_path_that_cannot_hold_the_file_is_a_write_error(trained, tmp_path):
    a_file = tmp_path / "afile"
    a_file.write_text("")
    for path, words in (
        (a_file / "m.safetensors", "folder you can write to"),
        (tmp_path, "names a folder"),
        (".", "names a folder"),
    ):
        with pytest.raises(xsstsr.WriteError, match=words):
            trained.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing half written


def test_foreign_files_refused(trained, tmp_path, monkeypatch):
    plain = tmp_path / "plain.safetensors"
    plain.write_bytes(st_save({"w": np.zeros((2, 2), dtype="float32")}))
    with pytest.raises(xsstsr.MetadataError, match="not an xsstsr generator"):
        xsstsr.load_model(plain)
    other_meta = tmp_path / "other.safetensors"
    other_meta.write_bytes(st_save(trained.state, metadata={"format": "pt"}))
    with pytest.raises(xsstsr.MetadataError):
        xsstsr.load_model(str(other_meta))

    checkpoint = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, checkpoint)
    for given in (checkpoint, str(checkpoint)):
        with pytest.raises(xsstsr.WeightsError, match="safetensors"):
            xsstsr.load_model(given)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(xsstsr.WeightsError, match="safetensors"):
        xsstsr.load_model("model.pt")
    with pytest.raises(xsstsr.XsstsrError, match="safetensors"):
        xsstsr.load_model("missing.pt")
    with pytest.raises(xsstsr.ModelNotFoundError, match="does not exist"):
        xsstsr.load_model(tmp_path / "missing.safetensors")
    with pytest.raises(TypeError):
        xsstsr.load_model(42)


def test_changed_file_refused_by_ref(trained, tmp_path):
    """A worker that loads a registered file checks it against the graph's sha256."""
    path = trained.save(tmp_path / "m.safetensors")
    with pytest.raises(xsstsr.WeightsIntegrityError, match="changed on disk"):
        resolve_ref(ModelRef(sha256="0" * 64, path=str(path)))
    with pytest.raises(xsstsr.WeightsError, match="not available"):
        resolve_ref(ModelRef(sha256="1" * 64))


def test_a_model_named_like_a_released_one_is_never_swapped_for_it(tmp_path):
    """A worker that cannot read a model's file must not run the released model of the same
    name in its place (a fine-tune saved as "sst-x4" on a path other hosts cannot see)."""
    released = xsstsr.load_model("sst-x4")
    assert resolve_ref(ModelRef(sha256=released.sha256, name="sst-x4")) is not None
    unreadable = str(tmp_path / "moved.safetensors")
    with pytest.raises(xsstsr.WeightsError, match="not readable here"):
        resolve_ref(ModelRef(sha256="2" * 64, path=unreadable, name="sst-x4"))
    with pytest.raises(xsstsr.WeightsError, match="not available"):
        resolve_ref(ModelRef(sha256="3" * 64, name="no-such-model"))


def test_network_built_once_per_process(tmp_path):
    model = make_model(4, 1, seed=21, name="cache-x4")
    path = model.save(tmp_path / "c.safetensors")
    first = xsstsr.load_model(path)
    second = xsstsr.load_model(str(path))
    assert first is not second
    net = first.network("cpu")
    assert first.network("cpu") is net
    assert second.network("cpu") is net
    assert model.network("cpu") is net
    da = sst_field(nt=2, ny=8, nx=8)
    a = xsstsr.downscale(da, model=first, device="cpu")
    b = xsstsr.downscale(da, model=path, device="cpu")
    np.testing.assert_array_equal(a.values, b.values)
    assert first.network("cpu") is net  # downscale used the same network, built once
    assert model.network("cpu") is net


# -- the registry, the cache and pooch ---------------------------------------------------------


class Server:
    """A real HTTP server on 127.0.0.1 serving one folder, counting requests."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(5)
            self.running = False


class Release(types.SimpleNamespace):
    pass


@pytest.fixture
def release(tmp_path, monkeypatch):
    """Two released models: a shipped folder (registry + copies), a server, a clean cache."""
    shipped, served, cache = tmp_path / "shipped", tmp_path / "served", tmp_path / "cache"
    for folder in (shipped, served):
        folder.mkdir()
    models = {
        "sst-x4": make_model(4, 1, seed=31, name="sst-x4"),
        "sst-x2.5": make_model(5, 2, seed=32, name="sst-x2.5"),
    }
    blobs = {name: m.to_bytes() for name, m in models.items()}
    lines = ["# released weights", *(f"{n}.safetensors {sha256(b)}" for n, b in blobs.items())]
    (shipped / "registry.txt").write_text("\n".join(lines) + "\n")
    for name, blob in blobs.items():
        (served / f"{name}.safetensors").write_bytes(blob)
    monkeypatch.setattr(xsstsr.models.weights, "bundled_dir", lambda: shipped)
    monkeypatch.setenv("XSSTSR_CACHE", str(cache))
    waits: list[float] = []
    # pooch waits 1 s, 2 s between retries; record the waits instead of sleeping
    monkeypatch.setattr(pooch.core, "time", types.SimpleNamespace(sleep=waits.append))
    server = Server(served)
    monkeypatch.setenv("XSSTSR_WEIGHTS_URL", server.url)
    yield Release(
        shipped=shipped,
        served=served,
        cache=cache,
        server=server,
        models=models,
        blobs=blobs,
        waits=waits,
    )
    server.stop()


def test_download_through_pooch(release):
    model = xsstsr.load_model("sst-x4")
    cached = release.cache / "sst-x4.safetensors"
    assert cached.read_bytes() == release.blobs["sst-x4"]
    assert model.source == str(cached)
    assert model.sha256 == release.models["sst-x4"].sha256 == sha256(cached.read_bytes())
    assert release.server.requests == ["/sst-x4.safetensors"]
    assert model.metadata == release.models["sst-x4"].metadata

    # the second time it comes from the cache, without a request
    assert xsstsr.load_model("sst-x4").sha256 == model.sha256
    assert xsstsr.models.fetch("sst-x4.safetensors") == cached
    assert release.server.requests == ["/sst-x4.safetensors"]

    # a corrupted cache entry is fetched again
    cached.write_bytes(b"garbage")
    assert xsstsr.models.fetch("sst-x4") == cached
    assert cached.read_bytes() == release.blobs["sst-x4"]
    assert len(release.server.requests) == 2

    # and downscale finds the released model from the factor alone
    out = sst_field(nt=2, ny=8, nx=8).sstsr.downscale(factor=4, device="cpu")
    assert out.attrs["xsstsr_model"] == "sst-x4"
    assert out.attrs["xsstsr_model_sha256"] == model.sha256


def test_tampered_download_refused(release):
    (release.served / "sst-x4.safetensors").write_bytes(release.blobs["sst-x2.5"])
    with pytest.raises(xsstsr.WeightsIntegrityError, match="sha256"):
        xsstsr.load_model("sst-x4")
    assert not (release.cache / "sst-x4.safetensors").exists()
    assert release.server.requests == ["/sst-x4.safetensors"] * 3  # pooch retried twice
    assert release.waits == [1, 2]
    # even though a valid copy ships: a mirror that serves a wrong file is an error
    (release.shipped / "sst-x4.safetensors").write_bytes(release.blobs["sst-x4"])
    with pytest.raises(xsstsr.WeightsIntegrityError):
        xsstsr.models.fetch("sst-x4")


def test_default_fit_trains_from_scratch_when_the_release_cannot_load(release):
    # a mirror serving a wrong file: init="auto" warns and starts from scratch, an
    # explicit init="sst-x4" is refused
    (release.served / "sst-x4.safetensors").write_bytes(release.blobs["sst-x2.5"])
    truth = xsstsr.datasets.synthetic_sst(32, 32, periods=6, seed=0)
    options = dict(steps=1, batch_size=2, patch_size=8, validation=0.0, progress=False)
    with pytest.warns(xsstsr.WeightsWarning, match="training from scratch"):
        model = xsstsr.fit(truth, **options)
    assert model.metadata["training"]["init"] is None
    with pytest.raises(xsstsr.WeightsIntegrityError):
        xsstsr.fit(truth, init="sst-x4", **options)


def test_offline_uses_shipped_copy(release):
    shipped = release.shipped / "sst-x4.safetensors"
    shipped.write_bytes(release.blobs["sst-x4"])
    release.server.stop()
    model = xsstsr.load_model("sst-x4")
    assert model.source == str(shipped)
    assert model.sha256 == release.models["sst-x4"].sha256
    assert not (release.cache / "sst-x4.safetensors").exists()
    assert release.server.requests == []

    # a shipped copy that does not match the registry is refused
    shipped.write_bytes(release.blobs["sst-x4"][:-4] + b"\x00\x00\x00\x00")
    with pytest.raises(xsstsr.WeightsIntegrityError, match="tampered"):
        xsstsr.load_model("sst-x4")

    # offline, with no shipped copy at all: the refused URL is named
    with pytest.raises(xsstsr.DownloadError, match="XSSTSR_WEIGHTS_URL") as info:
        xsstsr.load_model("sst-x2.5")
    assert f"from {release.server.url}sst-x2.5.safetensors: cannot connect" in str(info.value)
    assert isinstance(info.value, OSError)


def test_shipped_copy_without_mirror(release, monkeypatch):
    monkeypatch.delenv("XSSTSR_WEIGHTS_URL")
    shipped = release.shipped / "sst-x4.safetensors"
    shipped.write_bytes(release.blobs["sst-x4"])
    assert xsstsr.models.fetch("sst-x4") == shipped
    assert xsstsr.load_model("sst-x4").sha256 == release.models["sst-x4"].sha256
    shipped.write_bytes(release.blobs["sst-x2.5"])
    with pytest.raises(xsstsr.WeightsIntegrityError):
        xsstsr.models.fetch("sst-x4")
    assert release.server.requests == []


def test_unknown_name(release):
    with pytest.raises(xsstsr.ModelNotFoundError) as info:
        xsstsr.load_model("sst-x7")
    message = str(info.value)
    assert "sst-x7" in message
    assert "['sst-x2.5', 'sst-x4']" in message
    assert isinstance(info.value, KeyError)
    with pytest.raises(xsstsr.ModelNotFoundError):
        xsstsr.models.fetch("registry.txt")
    assert release.server.requests == []


def test_available_models_sorted_by_factor(tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    names = ["sst-x10", "sst-x2.5", "sst-x5", "sst-x2", "sst-x4", "custom"]
    lines = [f"{n}.safetensors {sha256(n.encode())}" for n in names]
    lines.append(f"MODEL_CARD.md {sha256(b'card')}")
    (shipped / "registry.txt").write_text("\n\n".join(lines))
    monkeypatch.setattr(xsstsr.models.weights, "bundled_dir", lambda: shipped)
    assert xsstsr.available_models() == [
        "custom",
        "sst-x2",
        "sst-x2.5",
        "sst-x4",
        "sst-x5",
        "sst-x10",
    ]
    (shipped / "registry.txt").write_text("sst-x4.safetensors not-a-hash\n")
    with pytest.raises(xsstsr.WeightsError, match="line 1"):
        xsstsr.available_models()
    (shipped / "registry.txt").unlink()
    assert xsstsr.available_models() == []


def test_fetch_all(release):
    paths = xsstsr.fetch_all()
    assert sorted(paths) == sorted(release.cache / f"{n}.safetensors" for n in release.blobs)
    for path in paths:
        assert path.read_bytes() == release.blobs[path.stem]
    assert sorted(release.server.requests) == ["/sst-x2.5.safetensors", "/sst-x4.safetensors"]
    release.server.stop()  # now offline: everything is cached
    assert sorted(xsstsr.fetch_all()) == sorted(paths)
    assert xsstsr.load_model("sst-x2.5").factor == 2.5


def test_fetch_all_without_a_mirror_fills_the_cache_from_the_shipped_copies(
    release, monkeypatch, tmp_path
):
    """The cache folder alone is what an offline machine needs, as the guide says."""
    monkeypatch.delenv("XSSTSR_WEIGHTS_URL")
    for name, blob in release.blobs.items():
        (release.shipped / f"{name}.safetensors").write_bytes(blob)
    paths = xsstsr.fetch_all()
    assert sorted(paths) == sorted(release.cache / f"{n}.safetensors" for n in release.blobs)
    assert all(p.read_bytes() == release.blobs[p.stem] for p in paths)
    assert release.server.requests == []
    blocked = tmp_path / "afile"
    blocked.write_text("")
    monkeypatch.setenv("XSSTSR_CACHE", str(blocked / "cache"))
    with pytest.raises(xsstsr.WriteError, match="XSSTSR_CACHE"):
        xsstsr.fetch_all()


def test_a_cache_that_cannot_be_written_is_not_called_a_download_failure(
    release, monkeypatch, tmp_path
):
    blocked = tmp_path / "afile"
    blocked.write_text("")
    monkeypatch.setenv("XSSTSR_CACHE", str(blocked / "cache"))
    with pytest.raises(xsstsr.WriteError, match=r"weights cache.*XSSTSR_CACHE"):
        xsstsr.load_model("sst-x4")  # a mirror is set and nothing ships: it must download


# -- mirror URLs and time limits ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("example.org/weights", "has no scheme"),
        ("127.0.0.1:8000/weights/", "has no scheme"),
        ("ftp://example.org/weights/", "the scheme 'ftp'"),
        ("https://example.org/{}/", r"braces other than \{version\}"),
        ("https://example.org/{name}/", r"braces other than \{version\}"),
        ("https://example.org/{version/", r"braces other than \{version\}"),
        ("http:///weights/", "has no host"),
        ("http://[::1/weights/", "is not a valid URL"),
        ("https://exa mple.org/weights/", "is not a valid URL"),
        ("https://example.org:port/weights/", "is not a valid URL"),
        ("https://example.org/weights?token=1", "has a query"),
    ],
)
def test_malformed_mirror_refused(release, monkeypatch, url, problem):
    monkeypatch.setenv("XSSTSR_WEIGHTS_URL", url)
    # even with a shipped copy: the mirror asked for is the user's to fix
    (release.shipped / "sst-x4.safetensors").write_bytes(release.blobs["sst-x4"])
    with pytest.raises(xsstsr.DownloadError, match=problem) as info:
        xsstsr.load_model("sst-x4")
    info.match(r"e\.g\. XSSTSR_WEIGHTS_URL=https://example\.org/xsstsr/weights/")
    assert release.server.requests == []


def test_mirror_with_version_template(release, monkeypatch):
    versioned = release.served / f"v{__version__}"
    versioned.mkdir()
    (versioned / "sst-x4.safetensors").write_bytes(release.blobs["sst-x4"])
    monkeypatch.setenv("XSSTSR_WEIGHTS_URL", release.server.url + "{version}")
    assert xsstsr.load_model("sst-x4").sha256 == release.models["sst-x4"].sha256
    assert release.server.requests == [f"/v{__version__}/sst-x4.safetensors"]


def test_file_mirror(release, monkeypatch):
    monkeypatch.setenv("XSSTSR_WEIGHTS_URL", release.served.as_uri())
    assert xsstsr.load_model("sst-x4").sha256 == release.models["sst-x4"].sha256
    assert (release.cache / "sst-x4.safetensors").read_bytes() == release.blobs["sst-x4"]
    (release.served / "sst-x2.5.safetensors").unlink()
    with pytest.raises(xsstsr.DownloadError, match=r"sst-x2\.5\.safetensors: .*No such file"):
        xsstsr.load_model("sst-x2.5")
    assert release.server.requests == []


def test_mirror_without_the_file(release):
    (release.served / "sst-x4.safetensors").unlink()
    with pytest.raises(xsstsr.DownloadError, match="answered HTTP 404") as info:
        xsstsr.load_model("sst-x4")
    info.match(f"from {release.server.url}sst-x4.safetensors")
    assert release.server.requests == ["/sst-x4.safetensors"] * 3  # pooch retried twice


def test_refused_connection_names_the_url(release, monkeypatch):
    url = refused_url()
    monkeypatch.setenv("XSSTSR_WEIGHTS_URL", url)
    with pytest.raises(xsstsr.DownloadError, match="cannot connect") as info:
        xsstsr.models.fetch("sst-x4")
    assert f"{url}sst-x4.safetensors" in str(info.value)
    assert release.waits == [1, 2]  # a refusal may be a restart: retried


def test_host_refused_by_urllib3_is_a_download_error(release, monkeypatch):
    """A host only urllib3 refuses (at connection time) is not a hash mismatch."""
    monkeypatch.setenv("XSSTSR_WEIGHTS_URL", "http://a..b/weights/")
    with pytest.raises(xsstsr.DownloadError, match=r"cannot connect \(Failed to parse"):
        xsstsr.models.fetch("sst-x4")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Timeouts(10, 30, 300)),
        ("600", Timeouts(10, 30, 600)),
        (" 5 ", Timeouts(5, 5, 5)),  # a total below the defaults bounds them too
        ("1,2,3.5", Timeouts(1, 2, 3.5)),
    ],
)
def test_download_timeouts(monkeypatch, text, expected):
    monkeypatch.setenv("XSSTSR_DOWNLOAD_TIMEOUT", text)
    assert download_timeouts() == expected


@pytest.mark.parametrize("text", ["fast", "0", "-1", "nan", "inf", "1,2", "1,2,3,4", "1,,3"])
def test_bad_download_timeouts_refused(monkeypatch, text):
    monkeypatch.setenv("XSSTSR_DOWNLOAD_TIMEOUT", text)
    with pytest.raises(xsstsr.OptionError, match=r"XSSTSR_DOWNLOAD_TIMEOUT=10,30,600"):
        download_timeouts()


@pytest.mark.parametrize("length", [True, False], ids=["with-length", "without-length"])
def test_trickling_mirror_cut_off_at_the_deadline(release, monkeypatch, length):
    """One byte every 50 ms never trips a 1 s read timeout; the 1 s total does."""
    trickler = Trickler(release.blobs["sst-x4"], every=0.05, length=length)
    monkeypatch.setenv("XSSTSR_WEIGHTS_URL", trickler.url)
    monkeypatch.setenv("XSSTSR_DOWNLOAD_TIMEOUT", "1")
    started = time.monotonic()
    try:
        with pytest.raises(xsstsr.DownloadError, match="did not finish in 1 s") as info:
            xsstsr.load_model("sst-x4")
    finally:
        trickler.stop()
    assert 1 <= time.monotonic() - started < 2.5
    info.match(r"too slow or stalled\. Set XSSTSR_WEIGHTS_URL to another mirror")
    assert trickler.requests == ["/sst-x4.safetensors"]  # the deadline is not retried
    assert not release.cache.exists() or list(release.cache.iterdir()) == []  # no temporaries
    time.sleep(0.2)  # the abandoned transfer stops at its next byte
    assert not [t for t in threading.enumerate() if t.name == "xsstsr-download"]

    # a shipped copy is the fallback, as when offline
    (release.shipped / "sst-x4.safetensors").write_bytes(release.blobs["sst-x4"])
    trickler = Trickler(release.blobs["sst-x4"], every=0.05, length=length)
    monkeypatch.setenv("XSSTSR_WEIGHTS_URL", trickler.url)
    monkeypatch.setenv("XSSTSR_DOWNLOAD_TIMEOUT", "0.3")
    try:
        assert xsstsr.load_model("sst-x4").source == str(release.shipped / "sst-x4.safetensors")
    finally:
        trickler.stop()


def test_stalled_mirror_times_out(release, monkeypatch):
    """A server that accepts and never answers: the read timeout, then the deadline."""
    trickler = Trickler(release.blobs["sst-x4"], stall=True)
    monkeypatch.setenv("XSSTSR_WEIGHTS_URL", trickler.url)
    monkeypatch.setenv("XSSTSR_DOWNLOAD_TIMEOUT", "0.5,0.5,1")
    started = time.monotonic()
    try:
        with pytest.raises(xsstsr.DownloadError, match="too slow or stalled"):
            xsstsr.load_model("sst-x4")
    finally:
        trickler.stop()
    assert time.monotonic() - started < 2.5
    assert 1 <= len(trickler.requests) <= 3


def test_slow_but_steady_mirror_finishes(release, monkeypatch):
    """Pieces 0.1 s apart, each within the 0.5 s read timeout, all within the total."""
    blob = release.blobs["sst-x4"]
    trickler = Trickler(blob, every=0.1, piece=len(blob) // 4 + 1, length=False)
    monkeypatch.setenv("XSSTSR_WEIGHTS_URL", trickler.url)
    monkeypatch.setenv("XSSTSR_DOWNLOAD_TIMEOUT", "0.5,0.5,20")
    try:
        path = xsstsr.models.fetch("sst-x4")
    finally:
        trickler.stop()
    assert path.read_bytes() == blob
    assert trickler.requests == ["/sst-x4.safetensors"]


def test_available_models_details_name_kind_and_domain() -> None:
    table = xsstsr.available_models(details=True)
    assert list(table["name"]) == xsstsr.available_models()
    assert {"factor", "kind", "for", "input_spacing_deg", "time_step_days"} <= set(table.columns)
    for _, row in table.iterrows():
        assert row["kind"] == ("realistic" if row["name"].endswith("-gan") else "accurate")
        assert row["for"] == xsstsr.models.MODEL_KINDS[row["kind"]]
        assert row["factor"] == float(row["name"].split("-x")[1].split("-")[0])


def test_variant_names_parse_their_factor() -> None:
    assert xsstsr.models.factor_of_name("sst-x4-gan") == 4.0
    assert xsstsr.models.factor_of_name("sst-x2.5") == 2.5
    assert xsstsr.models.factor_of_name("sst-x4-") is None
