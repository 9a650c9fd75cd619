"""Security properties: no code execution from weights files, bounded and typed metadata,
no unsafe deserialisation anywhere in the package, hash-checked remote fetches.

The safetensors format details (truncation, every metadata key, foreign safetensors,
``.pt`` paths) are tested in tests/test_weights.py; a tampered download there too.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import struct
import tokenize
import types
from pathlib import Path

import numpy as np
import pooch
import pooch.core
import pytest
import torch
from helpers import make_model, sst_field
from safetensors.numpy import save as st_save

import xsstsr
import xsstsr.models
from xsstsr.models import Model
from xsstsr.models.metadata import MAX_HEADER_BYTES, MAX_METADATA_BYTES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model() -> Model:
    return make_model(4, 1, seed=9, name="secure-x4")


# -- weights load from safetensors only -------------------------------------------------------


class Armed:
    """Unpickling this creates ``path``: proof that a loader ran pickle's reduce hooks."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def hostile_files(folder: Path, marker: Path) -> dict[str, Path]:
    """A plain pickle and a torch.save zip, each renamed ``.safetensors``."""
    files = {
        "pickle": folder / "pickle.safetensors",
        "pickle-protocol-0": folder / "pickle0.safetensors",
        "torch-save": folder / "torch.safetensors",
    }
    files["pickle"].write_bytes(pickle.dumps({"weights": Armed(marker)}))
    files["pickle-protocol-0"].write_bytes(pickle.dumps(Armed(marker), protocol=0))
    torch.save({"state": Armed(marker)}, files["torch-save"])
    return files


def test_the_payloads_are_live(tmp_path):
    """The crafted files do run code when unpickled (so the next test means something)."""
    control = tmp_path / "control"
    files = hostile_files(tmp_path, control)
    pickle.loads(files["pickle"].read_bytes())
    assert control.exists()
    control.unlink()
    torch.load(io.BytesIO(files["torch-save"].read_bytes()), weights_only=False)
    assert control.exists()


@pytest.mark.parametrize("kind", ["pickle", "pickle-protocol-0", "torch-save"])
@pytest.mark.parametrize("how", ["load_model", "from_file", "downscale"])
def test_pickle_renamed_safetensors_is_refused(tmp_path, monkeypatch, kind, how):
    marker = tmp_path / "pwned"
    path = hostile_files(tmp_path, marker)[kind]

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle must never be used to read weights")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    call = {
        "load_model": lambda: xsstsr.load_model(path),
        "from_file": lambda: Model.from_file(path),
        "downscale": lambda: xsstsr.downscale(sst_field(nt=1, ny=8, nx=8), model=path),
    }[how]
    with pytest.raises(xsstsr.WeightsError, match="safetensors"):
        call()
    assert not marker.exists()


def test_pickle_checkpoint_message_names_the_conversion(tmp_path):
    path = hostile_files(tmp_path, tmp_path / "pwned")["pickle"]
    with pytest.raises(xsstsr.WeightsError, match=r"never unpickles.*save_file"):
        xsstsr.load_model(path)


# -- metadata parsing is bounded and typed --------------------------------------------------------


def test_header_over_the_limit_refused_before_parsing(monkeypatch):
    """A header that claims (and has) more than MAX_HEADER_BYTES is never parsed."""
    parsed: list[int] = []
    real_loads = json.loads

    def counting_loads(text, *args, **kwargs):
        parsed.append(len(text))
        return real_loads(text, *args, **kwargs)

    monkeypatch.setattr(xsstsr.models.metadata.json, "loads", counting_loads)
    size = MAX_HEADER_BYTES + 1
    data = struct.pack("<Q", size) + b"{" + b" " * (size - 2) + b"}" + bytes(16)  # valid JSON
    with pytest.raises(xsstsr.WeightsError, match=f"header of {size} bytes"):
        Model.from_bytes(data)
    claim = struct.pack("<Q", 2**63) + b"{}"  # a header length far beyond the file
    with pytest.raises(xsstsr.WeightsError, match="truncated or corrupt"):
        Model.from_bytes(claim)
    assert parsed == []


def test_metadata_over_the_limit_refused_before_parsing(model, monkeypatch):
    parsed: list[int] = []
    real_loads = json.loads

    def counting_loads(text, *args, **kwargs):
        parsed.append(len(text))
        return real_loads(text, *args, **kwargs)

    big = json.dumps({**model.metadata, "notes": "x" * MAX_METADATA_BYTES})
    data = st_save(model.state, metadata={"xsstsr": big})
    monkeypatch.setattr(xsstsr.models.metadata.json, "loads", counting_loads)
    with pytest.raises(xsstsr.MetadataError, match="limit"):
        Model.from_bytes(data)
    assert len(parsed) == 1  # the safetensors header only, never the metadata text
    assert all(n <= MAX_HEADER_BYTES for n in parsed)


@pytest.mark.parametrize(
    "hostile",
    [
        "[" * 50_000 + "]" * 50_000,  # nesting deeper than the parser's recursion limit
        '{"window": ' + "9" * 5000 + "}",  # an integer too long to convert
        "null",
        '"a string"',
        "[1, 2, 3]",
    ],
    ids=["deep-nesting", "huge-integer", "null", "string", "list"],
)
def test_hostile_metadata_text_refused(model, hostile):
    data = st_save(model.state, metadata={"xsstsr": hostile})
    with pytest.raises(xsstsr.MetadataError):
        Model.from_bytes(data)


def test_hostile_header_refused():
    deep = b"[" * 50_000 + b"]" * 50_000
    for header in (deep, b'"text"', b"\xff\xfe{}", b"[]"):
        with pytest.raises(xsstsr.WeightsError):
            Model.from_bytes(struct.pack("<Q", len(header)) + header)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("window", [3]),
        ("halo", 1e308),
        ("pool", {"x": 1}),
        ("inputs", ["sst"] * 17),
        ("inputs", {"sst": 1}),
        ("name", "n" * 201),
        ("architecture", ["residual-subpixel"]),
        ("architecture.features", 10**9),
        ("architecture.blocks", "4"),
        ("normalisation", {"mean": 15.0, "std": float("inf")}),
        ("normalisation", {"mean": None, "std": 1.0}),
    ],
)
def test_wrong_metadata_types_refused(model, key, value):
    meta = model.metadata
    if key.startswith("architecture."):
        meta["architecture"][key.split(".", 1)[1]] = value
    else:
        meta[key] = value
    data = st_save(model.state, metadata={"xsstsr": json.dumps(meta)})
    with pytest.raises(xsstsr.MetadataError, match="it must be"):
        Model.from_bytes(data)


# -- no unsafe deserialisation in the package ---------------------------------------------------

FORBIDDEN = {
    "pickle": re.compile(r"\bpickle\b"),
    "cloudpickle": re.compile(r"\bcloudpickle\b"),
    "marshal": re.compile(r"\bmarshal\b"),
    "shelve": re.compile(r"\bshelve\b"),
    "dill": re.compile(r"\bdill\b"),
    "torch.load": re.compile(r"\btorch\s*\.\s*load\b|\bfrom\s+torch\s+import\b[^\n]*\bload\b"),
    "eval(": re.compile(r"(?<![\w.])eval\s*\("),
    "exec(": re.compile(r"(?<![\w.])exec\s*\("),
    "yaml.load": re.compile(r"\byaml\s*\.\s*(unsafe_)?load\b"),
    "__import__": re.compile(r"\b__import__\s*\("),
}
_SKIPPED_TOKENS = {tokenize.COMMENT, tokenize.STRING}
_SKIPPED_TOKENS |= {getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}


def code_only(source: str) -> str:
    """The source with comments, docstrings and string literals blanked (positions kept)."""
    tokens = [
        tok._replace(string="" if tok.type == tokenize.COMMENT else '""')
        if tok.type in _SKIPPED_TOKENS
        else tok
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
    ]
    return tokenize.untokenize(tokens)


def findings(source: str) -> list[str]:
    code = code_only(source)
    return [name for name, pattern in FORBIDDEN.items() if pattern.search(code)]


def test_scanner_finds_what_it_should():
    assert findings("import pickle\nx = pickle.loads(b)\n") == ["pickle"]
    assert findings("state = torch.load(path)\n") == ["torch.load"]
    assert findings("y = eval('1')\nexec(code)\n") == ["eval(", "exec("]
    assert findings("cfg = yaml.load(fh)\n") == ["yaml.load"]
    ignored = '"""Never pickle."""\n# torch.load(x)\nnet.eval()\ns = "eval(x)"\n'
    assert findings(ignored) == []


def package_sources() -> list[Path]:
    files = sorted((ROOT / "xsstsr").rglob("*.py")) + sorted((ROOT / "weights").glob("*.py"))
    assert len(files) > 10
    return files


@pytest.mark.parametrize("path", package_sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_unsafe_deserialisation_in_source(path):
    assert findings(path.read_text(encoding="utf-8")) == []


# -- remote fetches are hash-checked -----------------------------------------------------------


@pytest.fixture
def shipped(tmp_path, monkeypatch, model):
    folder = tmp_path / "shipped"
    folder.mkdir()
    blob = model.to_bytes()
    lines = [
        f"sst-x4.safetensors {hashlib.sha256(blob).hexdigest()}",
        f"sst-x2.safetensors {'ab' * 32}",
        f"MODEL_CARD.md {'cd' * 32}",
    ]
    (folder / "registry.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(xsstsr.models.weights, "bundled_dir", lambda: folder)
    monkeypatch.setenv("XSSTSR_CACHE", str(tmp_path / "cache"))
    return folder


def test_pooch_registry_has_a_sha256_for_every_file(shipped, monkeypatch):
    created: list[dict] = []
    real_create = pooch.create

    def recording_create(**kwargs):
        created.append(kwargs)
        return real_create(**kwargs)

    monkeypatch.setattr(pooch, "create", recording_create)
    fetcher = xsstsr.models.download.make_pooch(
        "http://127.0.0.1:9/{version}/", xsstsr.models.cache_dir(), xsstsr.models.registry()
    )
    assert len(created) == 1
    registry = created[0]["registry"]
    assert set(registry) == set(xsstsr.models.registry()) == set(fetcher.registry)
    for name, known in registry.items():
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", known), (name, known)
    assert all(fetcher.registry[name] == registry[name] for name in registry)


def test_a_registry_line_without_hash_is_refused(shipped):
    (shipped / "registry.txt").write_text("sst-x4.safetensors\n")
    with pytest.raises(xsstsr.WeightsError, match="'FILE SHA256'"):
        xsstsr.models.fetch("sst-x4")


@pytest.mark.parametrize(
    "name",
    ["sst-x7", "../registry", "registry.txt", "sst-x4.pt", "/etc/passwd", "http://evil/x"],
)
def test_fetch_refuses_names_not_in_the_registry(shipped, monkeypatch, name):
    def no_network(**kwargs):
        raise AssertionError("nothing outside the registry may be fetched")

    monkeypatch.setattr(pooch, "create", no_network)
    monkeypatch.setenv("XSSTSR_WEIGHTS_URL", "http://127.0.0.1:9/")
    with pytest.raises(xsstsr.ModelNotFoundError, match="available models"):
        xsstsr.models.fetch(name)
    assert not (shipped.parent / "cache").exists()


def test_a_wrong_file_in_the_cache_is_never_used(shipped, model, monkeypatch):
    """The cache is re-hashed on every use; a swapped file is not loaded (here: no network)."""
    monkeypatch.setattr(pooch.core, "time", types.SimpleNamespace(sleep=lambda s: None))
    cache = shipped.parent / "cache"
    cache.mkdir()
    other = make_model(4, 1, seed=10, name="sst-x4")
    (cache / "sst-x4.safetensors").write_bytes(other.to_bytes())
    monkeypatch.setenv("XSSTSR_WEIGHTS_URL", "http://127.0.0.1:9/")  # refused connection
    with pytest.raises(xsstsr.DownloadError) as info:
        xsstsr.load_model("sst-x4")
    assert "XSSTSR_WEIGHTS_URL" in str(info.value)
    assert not np.array_equal(other.state["tail.weight"], model.state["tail.weight"])
