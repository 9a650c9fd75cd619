"""Checkpoints: the whole training state as safetensors plus a JSON record (never pickle).

One tensors file per step, named in the JSON: a kill between the two writes leaves the
previous JSON pointing at the previous (still present) tensors, never at a mismatch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import TrainingError
from ..io import write_atomic

CHECKPOINT_TENSORS = "xsstsr-checkpoint.safetensors"
CHECKPOINT_STATE = "xsstsr-checkpoint.json"


def _flatten_optimizer(prefix: str, state: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    tensors: dict[str, Any] = {}
    for index, slots in state["state"].items():
        for name, value in slots.items():
            tensors[f"{prefix}.{index}.{name}"] = (
                value.detach().cpu().reshape(-1) if value.ndim == 0 else value.detach().cpu()
            )
    return tensors, state["param_groups"]


def _unflatten_optimizer(
    prefix: str, tensors: Mapping[str, Any], groups: Any, reference: dict[str, Any]
) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if not key.startswith(prefix + "."):
            continue
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value.reshape(()) if name == "step" else value
    return {"state": state, "param_groups": groups}


#: what the loop keeps between steps; a record without them cannot be resumed
LOOP_KEYS = frozenset({"best_rmse", "best_step", "bad", "stopped"})


def flat_settings(obj: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested JSON-able mapping as dotted keys to JSON text (``training.lr: "0.002"``)."""
    out: dict[str, str] = {}
    for key, value in obj.items():
        if isinstance(value, Mapping):
            out.update(flat_settings(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value, sort_keys=True, default=str)
    return out


def save_checkpoint(
    directory: Path,
    step: int,
    fingerprint: str,
    nets: Mapping[str, Any],
    optimizers: Mapping[str, Any],
    history: list[dict[str, Any]],
    loop: Mapping[str, Any] | None = None,
    settings: Mapping[str, str] | None = None,
) -> None:
    """Write the training state as safetensors plus JSON (no pickle), atomically.

    ``loop`` is the loop's own JSON-able state (best validation so far, patience count);
    ``settings`` what the fingerprint was made from, to name what a resume changed.
    """
    from safetensors.torch import save

    tensors: dict[str, Any] = {}
    groups: dict[str, Any] = {}
    for name, net in nets.items():
        for key, value in net.state_dict().items():
            tensors[f"{name}/{key}"] = value.detach().cpu().contiguous()
    for name, opt in optimizers.items():
        flat, groups[name] = _flatten_optimizer(name, opt.state_dict())
        tensors.update({k: v.contiguous() for k, v in flat.items()})
    blob = save(tensors)
    # one tensors file per step, named in the JSON: a kill between the two writes leaves the
    # previous JSON pointing at the previous (still present) tensors, never at a mismatch
    name = _tensors_name(step)
    write_atomic(directory / name, blob)
    state = {
        "step": step,
        "fingerprint": fingerprint,
        "tensors": name,
        "tensors_sha256": hashlib.sha256(blob).hexdigest(),
        "param_groups": groups,
        "history": history,
        "loop": dict(loop or {}),
        "settings": dict(settings or {}),
        "xsstsr_version": __version__,
    }
    write_atomic(directory / CHECKPOINT_STATE, json.dumps(state, allow_nan=True).encode())
    for old in directory.glob("xsstsr-checkpoint*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def _tensors_name(step: int) -> str:
    return CHECKPOINT_TENSORS.replace(".safetensors", f"-{step:09d}.safetensors")


def load_checkpoint(
    directory: Path,
    fingerprint: str,
    nets: Mapping[str, Any],
    optimizers: Mapping[str, Any],
    hints: Mapping[str, str] | None = None,
    settings: Mapping[str, str] | None = None,
) -> tuple[int, list[dict[str, Any]], dict[str, Any]] | None:
    """Restore the training state: (step, history, loop state); None when there is none.

    ``hints`` maps a setting's name (``"init"``) to advice; the refusal adds the first
    one whose setting it names (or the first, when it names none).
    """
    from safetensors.torch import load

    state_path = directory / CHECKPOINT_STATE
    if not state_path.is_file():
        return None
    try:
        state = json.loads(state_path.read_text())
        name = state.get("tensors", CHECKPOINT_TENSORS) if isinstance(state, dict) else None
        if (
            not isinstance(name, str)
            or Path(name).name != name
            or not name.startswith("xsstsr-checkpoint")
        ):
            raise OSError(f"the record names no valid tensors file ({name!r})")
        blob = (directory / name).read_bytes()
    except (OSError, json.JSONDecodeError) as err:
        raise TrainingError(
            f"checkpoint in {directory} is unreadable ({err}); delete it to start again."
        ) from err
    if hashlib.sha256(blob).hexdigest() != state.get("tensors_sha256"):
        raise TrainingError(
            f"checkpoint tensors in {directory} do not match their record; "
            "the checkpoint is corrupt: delete it to start again."
        )
    if state.get("fingerprint") != fingerprint:
        then, now = state.get("settings") or {}, dict(settings or {})
        # one setting recorded twice (training.lr and training.config.lr) is named once
        changed: list[str] = []
        seen: set[tuple[str, Any, Any]] = set()
        for k in sorted(
            (k for k in set(then) | set(now) if then.get(k) != now.get(k)),
            key=lambda k: (len(k), k),
        ):
            key = (k.rsplit(".", 1)[-1], then.get(k), now.get(k))
            if key not in seen:
                seen.add(key)
                changed.append(k)
        what = (
            "; it differs in "
            + ", ".join(f"{k} ({then.get(k)} then, {now.get(k)} now)" for k in changed[:4])
            if isinstance(then, dict) and then and changed
            else ""
        )
        advice = [
            text
            for key, text in (hints or {}).items()
            if text and (not what or any(key in k.split(".") for k in changed))
        ]
        raise TrainingError(
            f"the checkpoint in {directory} was made by a different configuration or data"
            f"{what}; use another checkpoint_dir, or the same arguments as the first run."
            + (f" {advice[0]}" if advice else "")
        )
    try:
        tensors = load(blob)
        for name, net in nets.items():
            prefix = f"{name}/"
            net.load_state_dict(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            )
        for name, opt in optimizers.items():
            opt.load_state_dict(
                _unflatten_optimizer(name, tensors, state["param_groups"][name], opt.state_dict())
            )
        step, loop = state["step"], dict(state["loop"])
        if not isinstance(step, int) or step < 0 or LOOP_KEYS - set(loop):
            raise ValueError(f"step {step!r}, loop state keys {sorted(loop)}")
        return step, list(state["history"]), loop
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        # a record that hashes right but lacks a field: written by another xsstsr version
        raise TrainingError(
            f"checkpoint in {directory} cannot be restored ({type(err).__name__}: {err}); it "
            "may come from another xsstsr version: delete it to start again."
        ) from err
