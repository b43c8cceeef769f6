"""`python -m simulator` (what `make sim` runs) as a developer meets it: a street nobody can
reach fails loudly instead of reporting a perfect night, a missing controller is named, and the
report reads well (totals without an empty pole table, axes with titles)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import simulator.__main__ as sim_cli
from controller.broker import Broker, free_port


def test_no_node_connected_is_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # nothing listens there
    rc = sim_cli.main(
        ["--poles", "2", "--broker", f"mqtt://127.0.0.1:{port}", "--connect-timeout", "1"]
    )
    out = capsys.readouterr()
    assert rc == 1
    assert f"no node connected to mqtt://127.0.0.1:{port}" in out.err
    assert "service level" not in out.out  # no report that reads as a success


def test_no_controller_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREETPOLE_TOKEN", "spt_x")
    port = free_port()
    assert sim_cli.main(["--poles", "2", "--api", f"http://127.0.0.1:{port}"]) == 1
    assert f"no controller at http://127.0.0.1:{port}" in capsys.readouterr().err


def test_a_short_run_and_its_report(
    tmp_path: Path, broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    html = tmp_path / "report.html"
    args = ["--poles", "3", "--prefix", "DEV-", "--origin", "51.893,4.496", "--broker",
            broker.url, "--speed", "60", "--duration", "240", "--html", str(html)]  # fmt: skip
    assert sim_cli.main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"^DEV-0001 ", out, re.M)  # the terminal has the per-pole lines
    assert re.search(r"[1-9]\d* connects", out)
    page = html.read_text()
    summary = page.split("<h2>Summary</h2>")[1].split("</pre>")[0]
    assert "more poles" not in summary and "kWh used" in summary
    assert not re.search(r"^pole +kWh", summary, re.M)  # no empty per-pole table
    assert "white-space: pre-wrap" in page  # long lines wrap, never cut
    for title in ("mean light level", "presence events per sample", "simulated time (UTC)"):
        assert f">{title}" in page, title
    ticks = re.findall(r">(\d\d:\d\d(?::\d\d)?)</text>", page)
    assert len(ticks) == 9 and len(set(ticks)) == 9, ticks  # a short run: no repeated labels
    assert "max-width: 100%" in page and 'class="wide"' in page  # fits a phone


def test_origin_must_be_two_numbers() -> None:
    with pytest.raises(SystemExit):
        sim_cli.parse(["--origin", "51.9"])
    assert sim_cli.parse(["--origin", "51.9,4.5"]).origin == (51.9, 4.5)
