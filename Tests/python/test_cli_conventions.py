"""What docs/cli-conventions.md promises of every command: the logging flags, the log going to
--log-file instead of stderr, the exit statuses, and output without control sequences where
stderr is not a live terminal (a pipe, or a terminal with TERM=dumb)."""
import os
import pty
import re
import subprocess

import pytest

from conftest import make_wrf_sample, run_vz, vz_command

COMMANDS = ["mount", "unmount", "status", "scan", "merge", "export", "info", "inspect", "verify"]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_wrf_sample(tmp_path_factory.mktemp("conventions"), days=2)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_the_logging_flags(command):
    p = run_vz([command, "--help"])
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.split())  # the help wraps its lines
    assert "--log-level <log-level> Log level: trace, debug, info, notice, warning (default), error or critical." in text, p.stdout
    assert "--log-file <path> Append the log to this file instead of stderr." in text, p.stdout


def test_the_log_goes_to_the_log_file_and_stays_off_stderr(archive, tmp_path):
    log = tmp_path / "scan.log"
    log.write_text("an earlier line\n")
    p = run_vz(["scan"] + archive + ["--concat-dim", "Time", "--no-cache", "--refs", tmp_path / "r.json", "--log-level", "info",
                                     "--log-file", log])
    assert p.returncode == 0, p.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == "an earlier line", "the file is appended to"
    assert any(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+ info zarrmount\[\d+\]: count=2 scanning files$", line) for line in lines), lines
    assert "scanning files" not in p.stderr, p.stderr
    assert "scanned 2 files" in p.stderr, "the command's own output stays on stderr"
    # Without --log-file the same line is on stderr.
    p = run_vz(["scan"] + archive + ["--concat-dim", "Time", "--no-cache", "--refs", tmp_path / "r.json", "--log-level", "info"])
    assert p.returncode == 0 and "scanning files" in p.stderr, p.stderr
    # A log file that cannot be written stops the command before it does anything.
    p = run_vz(["status", str(tmp_path), "--log-file", tmp_path / "missing-dir" / "x.log"])
    assert p.returncode == 1
    assert p.stderr.startswith("error: --log-file %s: cannot open it for writing" % (tmp_path / "missing-dir" / "x.log")), p.stderr


def test_exit_statuses(archive, tmp_path):
    ok = run_vz(["scan"] + archive + ["--concat-dim", "Time", "--no-cache", "--refs", tmp_path / "r.json"])
    assert ok.returncode == 0, ok.stderr
    missing = run_vz(["scan", tmp_path / "absent-*.nc", "--refs", tmp_path / "r.json"])
    assert missing.returncode == 1 and missing.stderr.startswith("error: "), missing.stderr
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 200)
    skipped = run_vz(["scan"] + archive + [bad, "--concat-dim", "Time", "--no-cache", "--on-error", "skip", "--refs", tmp_path / "s.json"])
    assert skipped.returncode == 2, skipped.stderr
    assert "skipped: %s" % bad in skipped.stderr, skipped.stderr
    usage = run_vz(["scan", "--no-such-flag"])
    assert usage.returncode == 64, usage.stderr
    not_mounted = run_vz(["status", tmp_path])
    assert not_mounted.returncode == 1 and "not a zarrmount mount" in not_mounted.stderr, not_mounted.stderr


def test_a_directory_named_as_a_source_says_how_to_name_its_files(archive, tmp_path):
    """A directory where files are expected was refused as "no such file"; the error now says it
    is a directory and gives the globs for its top level and for every level, which work."""
    top = tmp_path / "archive"
    (top / "2030").mkdir(parents=True)
    for path in archive:
        os.link(path, top / "2030" / os.path.basename(path))
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    for command in (["scan", top, "--refs", tmp_path / "r.json"], ["mount", top, mountpoint]):
        p = run_vz(command + ["--no-cache"])
        assert p.returncode == 1, p.stderr
        assert p.stderr.startswith("error: %s is a directory: name its files with a glob in quotes, '%s/*.nc' for the files at its top, "
                                   "or '%s/**/*.nc' for those in its subdirectories too" % (top, top, top)), p.stderr
    p = run_vz(["scan", "%s/**/*.nc" % top, "--concat-dim", "Time", "--no-cache", "--refs", tmp_path / "r.json"])
    assert p.returncode == 0 and "scanned %d files" % len(archive) in p.stderr, p.stderr


def test_a_url_list_saved_on_windows_names_each_file(archive, tmp_path):
    """A --urls list with CRLF line endings and a byte order mark (saved by a Windows editor) was
    one source of every line run together: "no such file". Each line is now a source, as the same
    list with LF endings gives."""
    import json
    unix, windows = tmp_path / "unix.txt", tmp_path / "windows.txt"
    unix.write_text("\n".join(archive) + "\n")
    windows.write_bytes(("\ufeff" + "\r\n".join(archive[:2]) + "\r\n# a comment\r\n\r\n  " + "\r\n".join(archive[2:]) + "  \r\n").encode())
    refs = {}
    for listing in (unix, windows):
        out = tmp_path / (listing.stem + ".json")
        p = run_vz(["scan", "--urls", listing, "--concat-dim", "Time", "--no-cache", "--refs", out])
        assert p.returncode == 0 and "scanned %d files" % len(archive) in p.stderr, p.stderr
        refs[listing.stem] = json.loads(out.read_text())
    assert refs["windows"] == refs["unix"]


def _stderr_through_a_terminal(args, term):
    """Runs zarrmount with stderr on a pseudo-terminal, returns what the terminal received."""
    leader, follower = pty.openpty()
    env = dict(os.environ, TERM=term)
    env.pop("ZARRMOUNT_PROGRESS_TERMINAL", None)
    child = subprocess.Popen(vz_command() + [str(a) for a in args], stdout=subprocess.DEVNULL, stderr=follower, env=env)
    os.close(follower)
    received = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        received += chunk
    os.close(leader)
    assert child.wait(timeout=300) == 0, received.decode(errors="replace")
    return received.decode(errors="replace")


def test_progress_is_redrawn_on_a_terminal_and_plain_lines_on_a_dumb_one(archive, tmp_path):
    args = ["scan"] + archive + ["--concat-dim", "Time", "--no-cache", "--refs", tmp_path / "r.json"]
    live = _stderr_through_a_terminal(args, "xterm")
    assert "\r\x1b[2K[" in live, repr(live)
    dumb = _stderr_through_a_terminal(args, "dumb")
    assert "\x1b" not in dumb and "\r\x1b" not in dumb, repr(dumb)
    assert re.search(r"\[#+-*\] 2/2 files", dumb), repr(dumb)
    piped = run_vz(args)
    assert "\x1b" not in piped.stderr, repr(piped.stderr)
