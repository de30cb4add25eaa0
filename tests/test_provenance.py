"""Provenance of reported runs (issue 15): every table and claims file states the commits, dataset hashes and package
versions of its runs, warns in one line when they are mixed or differ from the checkout, and the claims check refuses
mixed runs unless given --allow-mixed-provenance."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from run_folders import run_provenance, write_run

from qhyer.errors import UserError
from qhyer.io import ARCHIVE_COMMIT, git_commit
from qhyer.report import claims, tables
from qhyer.report.__main__ import main as report_main
from qhyer.runs import load_records, provenance_differences, read_summary, record_row, versions_label

PLAY, NOISY = "cube-single-play-v0", "cube-single-noisy-v0"
METHODS = ("qhyer", "gciql")
OTHER_COMMIT = "f" * 40

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def checkout(monkeypatch) -> dict[str, str]:
    """The checkout the fake runs record (tests/run_folders.py), pinned for the report: a commit made by someone
    else while the tests run must not make this checkout another one."""
    block = run_provenance(PLAY)
    pinned = {"commit": block["commit"], "versions": versions_label(block["versions"])}
    for module in (tables, claims):
        monkeypatch.setattr(module, "checkout_provenance", lambda: pinned)
    return pinned


def runs_at(root: Path, provenance_of=None) -> list[Path]:
    """Runs of two methods on two datasets; `provenance_of(dataset, method)` gives each one's block (default: this
    checkout's)."""
    return [write_run(root, method=m, dataset=d, score=50.0, provenance=provenance_of(d, m) if provenance_of else None)
            for m in METHODS for d in (PLAY, NOISY)]


def stale_gciql(dataset: str, method: str) -> dict:
    """The gciql runs trained at another commit: a folder that mixes code."""
    block = run_provenance(dataset)
    return {**block, "commit": OTHER_COMMIT} if method == "gciql" else block


def table(runs: list[Path], out: Path, capsys) -> tuple[str, str, pd.DataFrame, str]:
    """(.md, .tex, tidy CSV, stderr) of Table 1 built from `runs` through the CLI."""
    capsys.readouterr()
    assert report_main(["table1", "--runs", *map(str, runs), "--out", str(out), "--reps", "50"]) == 0
    err = capsys.readouterr().err
    return out.with_suffix(".md").read_text(), out.with_suffix(".tex").read_text(), pd.read_csv(out), err


def test_identical_provenance_is_stated_without_warning(tmp_path, capsys, checkout):
    md, tex, tidy, err = table(runs_at(tmp_path / "runs"), tmp_path / "table1.csv", capsys)
    commit = checkout["commit"]
    assert "WARNING" not in md + tex + err
    assert f"{commit} (4 runs)" in md and f"% {tables.COMMITS_LABEL}: {commit}" in tex
    block = run_provenance(PLAY)
    assert block["inputs_sha256"]["dataset"][:16] in md and "torch=" in md
    assert set(tidy["commit"]) == {commit}  # tidy: one column per provenance field, one value per row
    assert set(tidy["dataset_sha256"]) == {run_provenance(d)["inputs_sha256"]["dataset"] for d in (PLAY, NOISY)}
    assert tidy["versions"].str.contains(f"torch={block['versions']['torch']}", regex=False).all()


def test_two_commits_warn_in_one_line_on_stderr_and_in_the_header(tmp_path, capsys):
    md, tex, tidy, err = table(runs_at(tmp_path / "runs", stale_gciql), tmp_path / "table1.csv", capsys)
    warnings = [line for line in err.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "mixed provenance" in warnings[0] and OTHER_COMMIT in warnings[0]
    assert "main/default/gciql/cube-single-play-v0/seed0" in warnings[0]  # names the runs that differ
    assert warnings[0] in md.splitlines() and f"% {warnings[0]}" in tex.splitlines()
    assert set(tidy.loc[tidy["method"] == "gciql", "commit"]) == {OTHER_COMMIT}


def test_runs_that_agree_but_differ_from_the_checkout_are_warned(tmp_path, capsys):
    old = lambda dataset, method: {**run_provenance(dataset), "commit": OTHER_COMMIT}  # noqa: E731
    old_torch = lambda dataset, method: {**run_provenance(dataset),  # noqa: E731
                                         "versions": {**run_provenance(dataset)["versions"], "torch": "0.0.1"}}
    for name, provenance_of, needle in (("commit", old, f"commit {OTHER_COMMIT}"), ("torch", old_torch, "torch 0.0.1")):
        md, _, _, err = table(runs_at(tmp_path / name, provenance_of), tmp_path / f"{name}.csv", capsys)
        assert "differ from the current checkout" in err and needle in err and "mixed" not in err
        assert err.strip() in md


def test_mixed_dataset_hash_or_package_version_is_mixed(tmp_path):
    def one_run_differs(key: str, value) -> list[str]:
        root = tmp_path / key
        runs = runs_at(root)
        block = run_provenance(PLAY)
        block[key] = {**block[key], **value}
        runs.append(write_run(root, method="qhyer", dataset=PLAY, seed=1, provenance=block))
        return provenance_differences(load_records(runs))

    [hashes] = one_run_differs("inputs_sha256", {"dataset": "0" * 64})
    assert hashes.startswith(f"{PLAY} sha256:") and "000000000000 (1 run: main/default/qhyer/" in hashes
    [mujoco] = one_run_differs("versions", {"mujoco": "0.1"})
    assert mujoco.startswith("mujoco:") and "0.1 (1 run" in mujoco


def test_claims_refuse_mixed_provenance_by_default_and_say_when_allowed(tmp_path, capsys):
    runs = runs_at(tmp_path / "runs", stale_gciql)
    out = tmp_path / "claims_check.csv"
    argv = ["claims", "--runs", *map(str, runs), "--out", str(out)]
    with pytest.raises(UserError, match="no verdict from runs of mixed provenance: commit: .*--allow-mixed-provenance"):
        report_main(argv)
    assert not out.exists()
    with pytest.raises(UserError, match="mixed provenance"):
        report_main([*argv[:-2], "--explain", "main.cube-single-play.qhyer"])

    assert report_main([*argv, "--allow-mixed-provenance"]) == 0
    md = out.with_suffix(".md").read_text()
    assert "**Checked with `--allow-mixed-provenance`**: the verdicts below pool runs of different commits" in md
    assert OTHER_COMMIT in md and "WARNING: runs of mixed provenance" in md
    check = pd.read_csv(out)
    measured = check[check["verdict"] != "missing"]
    assert len(measured) and measured["commit"].str.contains(OTHER_COMMIT, regex=False).any()


def test_claims_of_one_provenance_state_it_without_warning(tmp_path, capsys, checkout):
    out = tmp_path / "claims_check.csv"
    assert report_main(["claims", "--runs", *map(str, runs_at(tmp_path / "runs")), "--out", str(out)]) == 0
    md = out.with_suffix(".md").read_text()
    assert "WARNING" not in md + capsys.readouterr().err and "allow-mixed-provenance" not in md
    assert f"- {tables.COMMITS_LABEL}: {checkout['commit']} (4 runs)" \
        in md


def test_a_run_without_provenance_reads_as_unknown(tmp_path):
    run = write_run(tmp_path, provenance={})
    row = record_row(read_summary(run), run)
    assert row["commit"] == row["dataset_sha256"] == "unknown" and row["versions"].startswith("torch=unknown ")


def test_commit_records_the_dirty_flag_of_tracked_files_only(tmp_path):
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "tracked.txt").write_text("a\n")
    git("add", "tracked.txt")
    git("commit", "-q", "-m", "one")
    clean = git_commit(tmp_path)
    assert len(clean) == 40 and not clean.endswith("-dirty")
    (tmp_path / "untracked.txt").write_text("ignored by the flag\n")
    assert git_commit(tmp_path) == clean
    (tmp_path / "tracked.txt").write_text("b\n")
    assert git_commit(tmp_path) == f"{clean}-dirty"


def test_an_unpacked_git_archive_records_its_commit(tmp_path):
    """`git archive` (and GitHub's source archives) expand qhyer/ARCHIVE_COMMIT (.gitattributes: export-subst), so a
    run trained from an archive records `<sha>-archive` instead of `unknown`; a checkout holds the placeholder."""
    archive = subprocess.run(["git", "archive", "HEAD", "qhyer/ARCHIVE_COMMIT"], cwd=REPO, capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp_path, filter="data")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    assert (tmp_path / "qhyer" / "ARCHIVE_COMMIT").read_text().strip() == head.stdout.strip()
    assert git_commit(tmp_path, tmp_path / "qhyer" / "ARCHIVE_COMMIT") == f"{head.stdout.strip()}-archive"
    assert ARCHIVE_COMMIT.read_text().strip() == "$Format:%H$"  # the checkout: git decides, dirty flag included
    assert git_commit(REPO) == git_commit(REPO, tmp_path / "absent")
