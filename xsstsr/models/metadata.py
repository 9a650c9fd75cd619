"""The weights' metadata: format constants, the schema and its checks, new metadata."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..cf.units import KELVIN_OFFSET, to_celsius
from ..errors import MetadataError, WeightsError

if TYPE_CHECKING:
    pass


FORMAT = "xsstsr-generator"


FORMAT_VERSION = 2  # the newest this build reads and writes


#: Architecture keys and the format version that introduced them. A file records the
#: lowest version that holds its features, so models without them stay readable by older
#: builds, and an older build refuses (rather than ignores) a feature it cannot run. A
#: version-1 file with such a key (written while the key was new) is read, and a save
#: writes the version it needs.
ARCHITECTURE_KEY_VERSIONS: dict[str, int] = {"scale_radius": 2}


METADATA_KEY = "xsstsr"


HISTORY_KEY = "__history__"


MAX_HEADER_BYTES = 8 * 1024 * 1024  # a generator's header is a few kB


MAX_METADATA_BYTES = 1024 * 1024


# Plausible normalisation (degC): an SST's anomalies are never below a millikelvin (fit
# floors them at 0.02 K), and its mean lies well inside -10..50 degC. Values outside come
# from an underflow, a unit mix-up (kelvin) or a corrupt file, and would scale every input
# by an absurd factor.
MIN_STD = 1e-3


MAX_STD = 100.0


MEAN_RANGE = (-10.0, 50.0)


# Tensor dtypes a generator's weights may be stored in; all are read into float32.
FLOAT_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8"}


# Metadata schema: key -> (accepted types, check, what it must be).
_Check = tuple[tuple[type, ...], Any, str]


METADATA_SCHEMA: dict[str, _Check] = {
    "format": ((str,), lambda v: v == FORMAT, f"the string {FORMAT!r}"),
    "format_version": ((int,), lambda v: 1 <= v <= FORMAT_VERSION, f"1..{FORMAT_VERSION}"),
    "name": ((str,), lambda v: 0 < len(v) <= 200, "a non-empty name"),
    "factor": ((int, float), lambda v: 1 < v <= 16, "a number in (1, 16]"),
    "upsample": ((int,), lambda v: 1 <= v <= 16, "an integer in 1..16"),
    "pool": ((int,), lambda v: 1 <= v <= 8, "an integer in 1..8"),
    "halo": ((int,), lambda v: 0 <= v <= 256, "an integer in 0..256"),
    "window": ((int,), lambda v: 1 <= v <= 64, "an integer in 1..64"),
    "inputs": (
        (list,),
        lambda v: 1 <= len(v) <= 16 and all(isinstance(s, str) for s in v),
        "a list of 1..16 input names",
    ),
    "architecture": ((dict,), lambda v: True, "a mapping"),
    "normalisation": (
        (dict,),
        lambda v: all(
            isinstance(v.get(k), (int, float))
            and not isinstance(v.get(k), bool)
            and math.isfinite(v[k])
            for k in ("mean", "std")
        ),
        "a mapping with finite numeric 'mean' and positive 'std' (degC)",
    ),
}

ARCHITECTURE_SCHEMA: dict[str, _Check] = {
    "type": ((str,), lambda v: v == "residual-subpixel", "'residual-subpixel'"),
    "features": ((int,), lambda v: 1 <= v <= 512, "an integer in 1..512"),
    "blocks": ((int,), lambda v: 0 <= v <= 64, "an integer in 0..64"),
    "up_features": ((int,), lambda v: 1 <= v <= 512, "an integer in 1..512"),
    "fill_iterations": ((int,), lambda v: 0 <= v <= 32, "an integer in 0..32"),
}
#: Keys a model may leave out (older models have none of them).
OPTIONAL_ARCHITECTURE_SCHEMA: dict[str, _Check] = {
    "scale_radius": ((int,), lambda v: 0 <= v <= 16, "an integer in 0..16"),
}

#: The optional ``domain`` metadata: what the model was trained on, each a [min, max] pair.
DOMAIN_KEYS: dict[str, str] = {
    "input_spacing_deg": "input grid spacing (degrees)",
    "time_spacing_days": "time step (days)",
    "sst_range_degC": "SST (degC)",
}


def _check_schema(
    values: Mapping[str, Any], schema: Mapping[str, _Check], where: str, optional: bool = False
) -> None:
    for key, (types, check, what) in schema.items():
        if key not in values:
            if optional:
                continue
            raise MetadataError(f"{where} has no {key!r}; it must be {what}.")
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, types) or not check(value):
            raise MetadataError(f"{where} has {key}={value!r:.80}; it must be {what}.")


def _check_normalisation(norm: Mapping[str, Any], source: str) -> None:
    """Refuse a std or mean that cannot be an SST's in degC, naming the key and the fix."""
    mean, std = float(norm["mean"]), float(norm["std"])
    fix = (
        "Store the training data's statistics in degC in the file's xsstsr metadata, or "
        "re-save the model with xsstsr.model.new_metadata(mean=..., std=...)."
    )
    if std <= 0:
        raise MetadataError(
            f"{source}: normalisation 'std' is {std!r}; it must be a positive number of degC "
            f"(the spread of the SST anomalies the model was trained on). {fix}"
        )
    if std < MIN_STD:
        raise MetadataError(
            f"{source}: normalisation 'std' is {std:g}, below the {MIN_STD:g} degC minimum (it "
            f"underflowed or is subnormal; an SST's anomalies are far larger), and inputs "
            f"divided by it would overflow. {fix}"
        )
    if std > MAX_STD:
        raise MetadataError(
            f"{source}: normalisation 'std' is {std:g}, above the {MAX_STD:g} degC maximum; no "
            f"SST spreads that far, so it is not in degC. {fix}"
        )
    low, high = MEAN_RANGE
    if 200.0 <= mean <= 350.0:
        raise MetadataError(
            f"{source}: normalisation 'mean' is {mean:g}, which is kelvin, not degC; store "
            f"mean - {KELVIN_OFFSET} = {to_celsius(mean, 'K'):.4g} instead. {fix}"
        )
    if not low <= mean <= high:
        raise MetadataError(
            f"{source}: normalisation 'mean' is {mean:g}, far outside SST in degC "
            f"({low:g}..{high:g}). {fix}"
        )


def _check_domain(domain: Any, source: str) -> None:
    if not isinstance(domain, Mapping):
        raise MetadataError(f"{source}: domain must be a mapping of [min, max] pairs.")
    for key, value in domain.items():
        if key not in DOMAIN_KEYS:
            continue  # later versions may declare more
        ok = (
            isinstance(value, (list, tuple))
            and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            and all(math.isfinite(v) for v in value)
            and value[0] <= value[1]
        )
        if not ok:
            raise MetadataError(
                f"{source}: domain {key}={value!r:.80}; it must be [min, max], two finite "
                "numbers with min <= max."
            )


def required_format_version(architecture: Mapping[str, Any]) -> int:
    """The lowest format version that holds an architecture (a key at its default, 0, is
    not a feature)."""
    used = [v for k, v in ARCHITECTURE_KEY_VERSIONS.items() if architecture.get(k)]
    return max([1, *used])


def _check_architecture_keys(architecture: Mapping[str, Any], source: str) -> None:
    known = {*ARCHITECTURE_SCHEMA, *OPTIONAL_ARCHITECTURE_SCHEMA, "conserve"}
    unknown = sorted(set(architecture) - known)
    if unknown:
        raise MetadataError(
            f"{source}: architecture has keys this xsstsr does not know ({', '.join(unknown)}), "
            f"which would change what the network computes; it knows {', '.join(sorted(known))}. "
            "A file from a newer xsstsr needs that version: pip install -U xsstsr."
        )


def _check_format_version(metadata: Mapping[str, Any], source: str) -> None:
    version = metadata.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise MetadataError(
            f"{source}: format_version {version} was written by a newer xsstsr; this one "
            f"reads 1..{FORMAT_VERSION}. Upgrade it: pip install -U xsstsr."
        )


def validate_metadata(metadata: Mapping[str, Any], source: str = "the weights") -> None:
    """Check the metadata's keys, types and ranges; raise MetadataError naming the problem."""
    if not isinstance(metadata, Mapping):
        raise MetadataError(f"{source}: metadata must be a JSON object.")
    _check_format_version(metadata, source)
    _check_schema(metadata, METADATA_SCHEMA, f"{source}: metadata")
    _check_normalisation(metadata["normalisation"], source)
    _check_schema(metadata["architecture"], ARCHITECTURE_SCHEMA, f"{source}: architecture")
    _check_schema(
        metadata["architecture"],
        OPTIONAL_ARCHITECTURE_SCHEMA,
        f"{source}: architecture",
        optional=True,
    )
    _check_architecture_keys(metadata["architecture"], source)
    conserve = metadata["architecture"].get("conserve", False)
    if not isinstance(conserve, bool):
        raise MetadataError(
            f"{source}: architecture has conserve={conserve!r:.80}; it must be true or false."
        )
    if abs(metadata["upsample"] / metadata["pool"] - metadata["factor"]) > 1e-9:
        raise MetadataError(
            f"{source}: factor {metadata['factor']} != upsample/pool "
            f"{metadata['upsample']}/{metadata['pool']}."
        )
    if "domain" in metadata:
        _check_domain(metadata["domain"], source)
    from ..nn.networks import receptive_halo

    needed = receptive_halo(metadata["architecture"], metadata["pool"])
    if metadata["halo"] < needed:
        raise MetadataError(
            f"{source}: halo {metadata['halo']} is smaller than the architecture's receptive "
            f"field ({needed} pixels); tiled results would depend on chunking. Re-save the "
            "model with xsstsr.model.new_metadata(), which sets the halo."
        )


def read_header(data: bytes, source: str) -> dict[str, Any]:
    """Parse the safetensors header with explicit bounds before trusting it."""
    if len(data) < 8:
        raise WeightsError(f"{source} is too short to be a safetensors file ({len(data)} bytes).")
    (size,) = struct.unpack("<Q", data[:8])
    if size > MAX_HEADER_BYTES or 8 + size > len(data):
        if data[:1] == b"\x80" or data[:2] == b"PK":  # pickle protocol 2+, torch.save zip
            raise WeightsError(
                f"{source} looks like a pickle or a torch.save file, not safetensors; xsstsr "
                "never unpickles. Convert it with safetensors.torch.save_file(state_dict, "
                "'model.safetensors') where you trust its origin."
            )
        raise WeightsError(
            f"{source} is not a valid safetensors file (header of {size} bytes in a "
            f"{len(data)}-byte file); it may be truncated or corrupt: download it again."
        )
    try:
        header = json.loads(data[8 : 8 + size])
    except (ValueError, RecursionError) as err:  # bad JSON or UTF-8, nesting, huge numbers
        raise WeightsError(f"{source} has an unreadable header ({err}); it is corrupt.") from err
    if not isinstance(header, dict):
        raise WeightsError(f"{source} has a malformed header; it is corrupt.")
    return header


def parse_metadata(header: Mapping[str, Any], source: str) -> dict[str, Any]:
    meta = header.get("__metadata__") or {}
    text = meta.get(METADATA_KEY) if isinstance(meta, dict) else None
    if not isinstance(text, str):
        raise MetadataError(
            f"{source} has no xsstsr metadata; it is not an xsstsr generator. Save models with "
            "Model.save() or xsstsr.fit()."
        )
    if len(text) > MAX_METADATA_BYTES:
        raise MetadataError(
            f"{source}: metadata of {len(text)} bytes exceeds the {MAX_METADATA_BYTES}-byte limit."
        )
    try:
        metadata = json.loads(text)
    except (ValueError, RecursionError) as err:  # bad JSON, nesting, huge numbers
        raise MetadataError(f"{source}: metadata is not valid JSON ({err}).") from err
    validate_metadata(metadata, source)
    return dict(metadata)


def new_metadata(
    *,
    name: str,
    upsample: int,
    pool: int,
    window: int,
    inputs: list[str],
    mean: float,
    std: float,
    architecture: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Metadata for a fresh generator; the halo follows from the architecture."""
    from ..nn.networks import DEFAULT_ARCHITECTURE, receptive_halo

    arch = dict(DEFAULT_ARCHITECTURE)
    arch.update(architecture or {})
    meta = {
        "format": FORMAT,
        "name": name,
        "factor": upsample / pool,
        "upsample": upsample,
        "pool": pool,
        "halo": receptive_halo(arch, pool),
        "window": window,
        "inputs": list(inputs),
        "architecture": arch,
        "normalisation": {"mean": float(mean), "std": float(std), "units": "degC"},
        "xsstsr_version": __version__,
    }
    meta.update(extra)
    meta["format_version"] = required_format_version(arch)  # set last: never a caller's
    validate_metadata(meta, name)
    return meta
