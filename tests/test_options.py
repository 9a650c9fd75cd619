"""set_options: one module for the library's options, over their environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

import xsstsr
from xsstsr.models import cache_dir, download_timeouts


def test_an_option_wins_over_its_environment_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XSSTSR_CACHE", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    with xsstsr.set_options(cache_dir=tmp_path / "option"):
        assert cache_dir() == tmp_path / "option"
        assert xsstsr.get_option("cache_dir") == str(tmp_path / "option")
    assert cache_dir() == tmp_path / "env"  # restored on leaving the block


def test_set_globally_and_unset_with_none(monkeypatch) -> None:
    monkeypatch.delenv("XSSTSR_DOWNLOAD_TIMEOUT", raising=False)
    assert download_timeouts() == xsstsr.models.Timeouts()
    try:
        xsstsr.set_options(download_timeout=(5, 6, 7))
        assert download_timeouts() == xsstsr.models.Timeouts(5.0, 6.0, 7.0)
        xsstsr.set_options(download_timeout=60)
        assert download_timeouts().total == 60.0
    finally:
        xsstsr.set_options(download_timeout=None)
    monkeypatch.setenv("XSSTSR_DOWNLOAD_TIMEOUT", "9")
    assert download_timeouts().total == 9.0


def test_ferret_dir_option_finds_the_data(tmp_path: Path) -> None:
    fixture = Path(__file__).parent / "data" / "coads_subset.nc"
    (tmp_path / "coads_climatology.cdf").write_bytes(fixture.read_bytes())
    with xsstsr.set_options(ferret_dir=tmp_path):
        assert xsstsr.datasets.open_coads_sst().sst.ndim == 3


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"cache": "/tmp"}, "unknown option.*'cache'.*cache_dir"),
        ({"cache_dir": 3}, "cache_dir must be a folder path"),
        ({"weights_url": 1}, "weights_url must be a URL"),
        ({"download_timeout": True}, "download_timeout must be seconds"),
    ],
)
def test_bad_options_are_refused_and_change_nothing(options, match) -> None:
    before = xsstsr.get_option("cache_dir")
    with pytest.raises(xsstsr.OptionError, match=match):
        xsstsr.set_options(**options)
    assert xsstsr.get_option("cache_dir") == before


def test_a_bad_timeout_option_names_the_fix() -> None:
    with xsstsr.set_options(download_timeout="soon"), pytest.raises(xsstsr.OptionError):
        download_timeouts()


def test_unknown_option_name_in_get_option() -> None:
    with pytest.raises(xsstsr.OptionError, match="options are cache_dir"):
        xsstsr.get_option("nope")
