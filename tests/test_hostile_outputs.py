"""Hostile input, outputs: every output is checked before anything is measured (one line,
exit 2, the model never imported), and a write that still fails afterwards keeps the run as
``*-incomplete.json`` in a named place. Each test asserts the exit code, the one line and
what is left on disk."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cnnbench.results import atomic_write_text, clean_orphan_temp_files, load_run
from tests.hostile import files, net, one_line, saved_run

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    return tmp_path


def _read_only_dir(where: Path) -> Path:
    """A directory this process cannot write to (root ignores modes: /sys/fs then)."""
    if os.geteuid() == 0:
        return Path("/sys/fs")
    folder = where / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def _measure(run_cli, spec: str, *args: str) -> tuple[int, str, str]:
    return run_cli("profile", spec, "--static-only", "-q", *args)


# --------------------------------------------------------------- refused before measuring


def test_out_naming_an_existing_file(cwd: Path, run_cli) -> None:
    spec, marker = net(cwd)
    (cwd / "afile").write_text("keep me")
    code, out, err = _measure(run_cli, spec, "--out", "afile", "-f", "csv")
    assert code == 2 and out == ""
    one_line(err, "--out afile", "exists and is not a directory")
    assert not marker.exists() and (cwd / "afile").read_text() == "keep me"


def test_out_in_a_read_only_directory(cwd: Path, run_cli) -> None:
    spec, marker = net(cwd)
    target = _read_only_dir(cwd) / "reports"
    code, _, err = run_cli(
        "compare", spec, "lenet5", "--static-only", "--out", str(target), "-f", "csv"
    )
    assert code == 2
    one_line(err, f"--out {target}", "is not writable")
    assert not marker.exists() and not target.exists()


def test_out_through_a_symlink_loop(cwd: Path, run_cli) -> None:
    spec, marker = net(cwd)
    (cwd / "a").symlink_to(cwd / "b")
    (cwd / "b").symlink_to(cwd / "a")
    code, _, err = _measure(run_cli, spec, "--out", "a/reports", "-f", "json")
    assert code == 2
    one_line(err, "symbolic link loop")
    assert not marker.exists() and files(cwd) == {"net.py"}


def test_out_below_a_broken_symlink(cwd: Path, run_cli) -> None:
    spec, marker = net(cwd)
    (cwd / "gone").symlink_to(cwd / "nowhere")
    code, _, err = _measure(run_cli, spec, "--out", "gone", "-f", "json")
    assert code == 2
    one_line(err, "broken symbolic link")
    assert not marker.exists()


def test_empty_format(cwd: Path, run_cli) -> None:
    spec, marker = net(cwd)
    code, out, err = _measure(run_cli, spec, "--format", "")
    assert code == 2 and out == ""
    one_line(err, "--format is empty", "table, csv")
    assert not marker.exists() and files(cwd) == {"net.py"}


def test_out_dash_with_two_formats(cwd: Path, run_cli) -> None:
    spec, marker = net(cwd)
    code, out, err = _measure(run_cli, spec, "--out", "-", "-f", "csv,json")
    assert code == 2 and out == ""
    one_line(err, "--out - writes one format")
    assert not marker.exists()


def test_report_name_too_long(cwd: Path, run_cli) -> None:
    run = saved_run(cwd / "run.json")
    code, _, err = run_cli("report", str(run), "--name", "n" * 300, "--out", "r", "-f", "csv")
    assert code == 2
    one_line(err, "report name of 300 bytes is too long", "at most")
    assert files(cwd) == {"run.json"}


@pytest.mark.parametrize("name", [".", "..", "a/b"])
def test_report_name_not_a_file_name(cwd: Path, run_cli, name: str) -> None:
    run = saved_run(cwd / "run.json")
    code, _, err = run_cli("report", str(run), "--name", name, "--out", "r", "-f", "csv")
    assert code == 2
    one_line(err, "must be a plain file name")
    assert files(cwd) == {"run.json"}


def test_report_file_that_is_a_directory(cwd: Path, run_cli) -> None:
    run = saved_run(cwd / "run.json")
    (cwd / "r" / "run.csv").mkdir(parents=True)
    code, _, err = run_cli("report", str(run), "--out", "r", "-f", "csv")
    assert code == 2
    one_line(err, "r/run.csv is a directory")
    assert files(cwd) == {"run.json"}


def test_sweep_out_naming_a_file(cwd: Path, run_cli) -> None:
    (cwd / "s.toml").write_text('models = ["lenet5"]\n')
    (cwd / "taken").write_text("")
    code, _, err = run_cli("sweep", "s.toml", "--out", "taken")
    assert code == 2
    one_line(err, "--out taken", "exists and is not a directory")
    assert files(cwd) == {"s.toml", "taken"}


def test_gate_junit_through_a_symlink_loop(cwd: Path, run_cli) -> None:
    spec, marker = net(cwd)
    (cwd / "a").symlink_to(cwd / "b")
    (cwd / "b").symlink_to(cwd / "a")
    code, _, err = run_cli(
        "gate", "check", "--baseline", "base.json", "-m", spec, "--junit", "a/j.xml"
    )
    assert code == 2
    one_line(err, "--junit a/j.xml", "symbolic link loop")
    assert not marker.exists()


def test_gate_json_name_too_long(cwd: Path, run_cli) -> None:
    spec, marker = net(cwd)
    target = "j" * 300 + ".json"
    code, _, err = run_cli("gate", "check", "--baseline", "base.json", "-m", spec, "--json", target)
    assert code == 2
    one_line(err, "--json", "longer than the file system allows")
    assert not marker.exists()


# --------------------------------------------------------------- what --out alone writes


def test_out_dir_with_the_table_format_writes_the_run(cwd: Path, run_cli) -> None:
    code, out, err = _measure(run_cli, "lenet5", "--out", "mine")
    assert code == 0, err
    assert files(cwd / "mine") == {"profile-lenet5.json"}
    assert load_run(cwd / "mine" / "profile-lenet5.json").results[0].model == "lenet5"


def test_default_out_with_the_table_format_writes_nothing(cwd: Path, run_cli) -> None:
    code, out, err = run_cli("profile", "lenet5", "--static-only")
    assert code == 0, err
    assert "lenet5" in out and files(cwd) == set()


# --------------------------------------------------------------- a write that fails afterwards


def _disk_full(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_writing_reports_keeps_the_run(
    cwd: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cnnbench.report.files as report_files

    monkeypatch.setattr(report_files, "atomic_write_text", _disk_full)
    code, _, err = _measure(run_cli, "lenet5", "--out", "r", "-f", "csv")
    assert code == 2
    line = one_line(err, "could not write r/profile-lenet5.csv (No space left on device)")
    assert "the run is kept in r/profile-lenet5-incomplete.json" in line
    assert files(cwd) == {"r/profile-lenet5-incomplete.json"}
    assert load_run(cwd / "r" / "profile-lenet5-incomplete.json").results[0].macs == 416_520


def test_stdout_on_a_full_device_keeps_the_run(
    cwd: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = open("/dev/full", "w")  # noqa: SIM115 - a real ENOSPC on flush
    monkeypatch.setattr(sys, "stdout", full)
    code, _, err = _measure(run_cli, "lenet5", "--out", "-", "-f", "csv")
    kept = cwd / "tmp" / "profile-lenet5-incomplete.json"  # --out -: the temp directory
    assert code == 2
    one_line(err, "could not write stdout (No space left on device)", str(kept))
    assert files(cwd) == {"tmp/profile-lenet5-incomplete.json"}
    assert load_run(kept).results[0].model == "lenet5"


def test_json_to_a_full_stdout_keeps_the_run_in_out(
    cwd: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", open("/dev/full", "w"))  # noqa: SIM115
    code, _, err = _measure(run_cli, "lenet5", "--json", "--out", "keep")
    assert code == 2
    one_line(err, "could not write stdout", "keep/profile-lenet5-incomplete.json")
    assert "keep/profile-lenet5-incomplete.json" in files(cwd)


def test_out_dir_failing_too_keeps_the_run_in_the_temp_directory(
    cwd: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cnnbench.report.files as report_files
    import cnnbench.results as results

    real = results.atomic_write_text

    def full_in_r(path: str | os.PathLike[str], text: str) -> Path:
        if Path(path).parent.name == "r":
            _disk_full()
        return real(path, text)

    monkeypatch.setattr(results, "atomic_write_text", full_in_r)
    monkeypatch.setattr(report_files, "atomic_write_text", full_in_r)
    code, _, err = _measure(run_cli, "lenet5", "--out", "r", "-f", "md")
    assert code == 2
    one_line(
        err,
        "could not write r/profile-lenet5.md",
        str(cwd / "tmp" / "profile-lenet5-incomplete.json"),
    )
    assert files(cwd) == {"tmp/profile-lenet5-incomplete.json"}


# --------------------------------------------------------------- orphan temporary files


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_write_leaves_an_orphan_that_the_next_write_removes(tmp_path: Path) -> None:
    code = (
        "import os, sys; import cnnbench.results as r\n"
        "r.os.replace = lambda *a: os._exit(9)\n"  # killed between write and rename
        f"r.atomic_write_text({str(tmp_path / 'run.json')!r}, 'x' * 1000)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, check=False)
    assert done.returncode == 9
    orphans = [p for p in tmp_path.iterdir() if p.name.startswith(".cnnbench-")]
    assert len(orphans) == 1 and orphans[0].stat().st_size == 1000
    (tmp_path / ".other.tmp").write_text("not ours")
    atomic_write_text(tmp_path / "next.json", "{}")
    assert files(tmp_path) == {"next.json", ".other.tmp"}


def test_a_live_writers_temp_file_is_left_alone(tmp_path: Path) -> None:
    parent = os.getppid()  # alive: our parent process
    live = tmp_path / f".cnnbench-{parent}-abcdefgh.tmp"
    dead = tmp_path / f".cnnbench-{_dead_pid()}-abcdefgh.tmp"
    live.write_text("")
    dead.write_text("")
    assert clean_orphan_temp_files(tmp_path) == [dead]
    assert live.exists() and not dead.exists()


# --------------------------------------------------------------- streams


def _cli(args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m cnnbench ARGS`` through a shell (for ``>&-``), in ``cwd``."""
    environ = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent), **env}
    return subprocess.run(
        ["sh", "-c", f"exec {sys.executable} -m cnnbench {args}"],
        env=environ,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_closed_stdout_with_data_for_it_is_refused_in_one_line(tmp_path: Path) -> None:
    spec, marker = net(tmp_path)
    done = _cli(f"profile {spec} --json >&-", tmp_path)
    assert done.returncode == 2
    one_line(done.stderr, "stdout is closed", "--out DIR")
    assert not marker.exists() and files(tmp_path) == {"net.py"}


@pytest.mark.slow
def test_ascii_only_stdout_gives_no_traceback(tmp_path: Path) -> None:
    run = saved_run(tmp_path / "run.json", model="réseau·naïf")
    done = _cli(f"report {run}", tmp_path, PYTHONIOENCODING="ascii")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "r\\xe9seau" in done.stdout
    assert files(tmp_path) == {"run.json"}
