from typer.testing import CliRunner

from unilandmark.cli import app


def test_demo_runs_end_to_end(tmp_path):
    """The README's main command, shortened to 2 epochs (the learning itself is tested in
    test_train.py)."""
    out = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "--out", str(out), "--epochs", "2"])
    assert r.exit_code == 0, r.output
    assert "report:" in r.output
    text = (out / "report.md").read_text()
    for domain in ("head", "hand", "chest"):
        assert f"## {domain}" in text
        assert (out / "predictions" / f"{domain}.csv").is_file()
        assert (out / "report" / domain / "report.json").is_file()
        assert (out / "report" / domain / "sdr_curve.png").is_file()
    assert (out / "run" / "best.pt").is_file()
