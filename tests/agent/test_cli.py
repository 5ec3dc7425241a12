"""`kanal agent`: bad options and a missing store exit 2 with one error line, before anything
runs (the agent itself is exercised as a process in test_kernel.py)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from kanal.cli.main import main

Capsys = pytest.CaptureFixture[str]


def test_a_missing_store_is_an_error_and_leaves_signal_handling_alone(
    tmp_path: Path, capsys: Capsys
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    missing = tmp_path / "none.db"
    code = main(["agent", "--node", "n1", "--store", str(missing), "--port", "0"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and str(missing) in err
    assert signal.getsignal(signal.SIGTERM) is before
    assert not missing.exists()


def test_a_resync_interval_below_the_min_interval_is_refused(capsys: Capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["agent", "--node", "n1", "--min-interval", "2", "--resync-interval", "1"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "error: --resync-interval must be longer than --min-interval\n"
    )


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--port", "70000", "argument --port: 70000 is not a port (0-65535)"),
        ("--min-interval", "-1", "argument --min-interval: -1.0 is negative"),
    ],
    ids=["port out of range", "negative interval"],
)
def test_bad_values_are_usage_errors(option: str, value: str, message: str, capsys: Capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["agent", "--node", "n1", option, value])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"kanal agent: error: {message}"
