"""`unimer build --executor ray` where no cluster answers: one line, exit 2, no traceback. In its own module:
tests/test_ray.py keeps this process connected to its cluster, which a build would join whatever the address."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from unimer_builder.cli import app

pytest.importorskip("ray", reason="unimer[ray] not installed")

runner = CliRunner()


def test_no_cluster_at_the_address_is_one_line_and_exit_2(tmp_path):
    from unimer_builder import synthesize

    source = synthesize(tmp_path / "src", "casme2", clips=2, subjects=1, seed=3, frames=10)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    build = ["build", str(source), "--out", str(tmp_path / "o"), "--composite", "labels"]
    res = runner.invoke(app, [*build, "--executor", "ray", "--ray-address", f"127.0.0.1:{port}"])
    assert res.exit_code == 2 and f"cannot connect to Ray at 127.0.0.1:{port}" in res.output, res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, [*build, "--ray-address", "auto"])
    assert res.exit_code == 2 and "--ray-address needs --executor ray" in res.output
    res = runner.invoke(app, [*build, "--executor", "dask"])
    assert res.exit_code == 2 and "--executor must be one of local, ray" in res.output
