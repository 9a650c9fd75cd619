"""The shipped weights are found the same way from a source checkout and from a wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHECK = (
    "import xsstsr, json; "
    "print(json.dumps([str(xsstsr.models.bundled_dir()), xsstsr.available_models(), "
    "xsstsr.load_model(xsstsr.available_models()[0]).sha256]))"
)


def test_wheel_layout_finds_shipped_weights(tmp_path: Path) -> None:
    """Lay the package out as pyproject.toml tells setuptools to, then load offline."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    site = tmp_path / "site"
    shutil.copytree(ROOT / "xsstsr", site / "xsstsr", ignore=shutil.ignore_patterns("__pycache__"))
    for package, folder in config["package-dir"].items():
        target = site / Path(*package.split("."))
        patterns = config["package-data"][package]
        target.mkdir(parents=True)
        for pattern in [*patterns, "__init__.py"]:
            for path in (ROOT / folder).glob(pattern):
                shutil.copy(path, target / path.name)
    assert "xsstsr.released" in config["packages"]
    env = dict(os.environ, PYTHONPATH=str(site), XSSTSR_CACHE=str(tmp_path / "cache"))
    env.pop("XSSTSR_WEIGHTS_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    import json

    folder, models, sha = json.loads(done.stdout)
    assert Path(folder) == site / "xsstsr" / "released"
    assert models == __import__("xsstsr").available_models()
    assert len(sha) == 64
    # nothing was downloaded or copied into the cache: the shipped copy was used in place
    assert not any((tmp_path / "cache").glob("*.safetensors"))


def test_weights_module_is_not_shadowed() -> None:
    """A package named xsstsr.weights would hide the weights module in a wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "xsstsr.weights" not in config["packages"]
    assert "xsstsr.weights" not in config.get("package-dir", {})
