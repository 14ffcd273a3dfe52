"""What ``emkit select`` and ``emkit demo`` say on stderr while they run (issue 18): one line per
fit (select, with --progress or on a terminal) or per data set (demo); stdout never changes."""

import numpy as np
import pytest

from emkit import datasets, report
from emkit.cli import main

FAITHFUL = datasets.path("faithful")


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def fitting_lines(err: str) -> list[str]:
    """Our lines among a progress bar's carriage returns."""
    return [line for line in err.replace("\r", "\n").splitlines()
            if line.startswith("emkit: fitting")]


def test_select_gmm_says_which_k_and_covariance_is_running(capsys):
    # Two restarts per fit: the grid is fitted one model at a time, each announced.
    argv = ["select", "gmm", FAITHFUL, "-k", "1-3", "--covariance", "full,diag", "--n-init", 2,
            "--max-iter", 30]
    status, quiet_out, quiet_err = run(capsys, *argv)  # stderr is not a terminal here
    assert status == 0 and fitting_lines(quiet_err) == []
    status, out, err = run(capsys, *argv, "--progress")
    assert status == 0
    assert fitting_lines(err) == [f"emkit: fitting K={k}, covariance {kind} ({i} of 6)"
                                  for i, (kind, k) in enumerate(
                                      [(kind, k) for kind in ("full", "diag") for k in (1, 2, 3)],
                                      start=1)]
    assert out == quiet_out  # the table is the same, stdout clean
    status, _, err = run(capsys, *argv, "--no-progress")
    assert status == 0 and fitting_lines(err) == []


def test_select_gmm_says_when_the_grid_is_fitted_as_one_stack(capsys):
    argv = ["select", "gmm", FAITHFUL, "-k", "1-3", "--covariance", "full,diag", "--n-init", 1,
            "--max-iter", 30]
    status, quiet_out, _ = run(capsys, *argv)
    status, out, err = run(capsys, *argv, "--progress")
    assert status == 0
    assert fitting_lines(err) == ["emkit: fitting the 6 models together"]
    assert out == quiet_out


def test_select_gmm_progress_skips_what_is_not_fitted(tmp_path, capsys):
    # K beyond the rows is skipped, so it is never announced; the count is of the real fits.
    path = tmp_path / "five.csv"
    rows = np.random.default_rng(0).normal(size=(5, 1))
    path.write_text("x\n" + "".join(f"{v!r}\n" for v in rows[:, 0].tolist()))
    status, _, err = run(capsys, "select", "gmm", path, "-k", "1,2,9", "--progress",
                         "--n-init", 1, "--max-iter", 5)
    assert status == 0
    assert fitting_lines(err) == ["emkit: fitting K=1, covariance full (1 of 2)",
                                  "emkit: fitting K=2, covariance full (2 of 2)"]


def test_select_dmm_says_which_k_is_running(capsys):
    argv = ["select", "dmm", datasets.path("twins"), "--samples-in-columns", "-k", "1,3",
            "--max-iter", 10, "--json"]
    status, quiet_out, quiet_err = run(capsys, *argv)
    assert status == 0 and fitting_lines(quiet_err) == []
    status, out, err = run(capsys, *argv, "--progress")
    assert status == 0
    assert fitting_lines(err) == ["emkit: fitting K=1 (1 of 2)", "emkit: fitting K=3 (2 of 2)"]
    assert out == quiet_out


def test_demo_says_what_it_is_fitting(tmp_path, capsys, monkeypatch):
    # The report's sections replaced by stand-ins (the real demo runs in test_report.py): the
    # loop of run_demo and the command line's line per data set are what is tested here.
    fitted = []
    names = ("faithful", "galaxies", "penguins", "airquality", "twins", "tones",
             "fixed_mixture", "geyser", "discoveries", "ethanol", "eustock")
    for name in names:
        monkeypatch.setattr(report, f"_{name}",
                            lambda *args, name=name: fitted.append(name) or {})
    monkeypatch.setattr(report, "_markdown", lambda summary: "report\n")
    monkeypatch.setattr(report, "_html", lambda markdown, folder: "<p>report</p>\n")
    status, out, err = run(capsys, "demo", "--output", tmp_path / "report", "--quick")
    assert status == 0 and fitted == list(names)
    lines = err.splitlines()
    assert [line.split(":")[1].split()[-1] for line in lines] == list(names)
    assert all(line.startswith("emkit: fitting ") and len(line.split(": ")) == 3
               for line in lines)
    assert out == f"report written to {tmp_path / 'report' / 'summary.md'}\n"


@pytest.mark.parametrize("kind", ["gmm", "dmm"])
def test_select_help_says_what_progress_shows(kind, capsys):
    assert main(["select", kind, "--help"]) == 0
    assert "which fit is running" in " ".join(capsys.readouterr().out.split())
