"""zarrmount from Python: the CLI's commands as functions (each runs the `zarrmount` binary), a
mount as a context manager, and a dataset whose mount lives as long as it is open."""
import atexit
import json
import os
import shutil
import re
import subprocess
import sys
import tempfile
import threading
import time

__all__ = ["__version__", "ZarrmountError", "Mount", "binary", "command", "scan", "merge", "mount", "open_dataset",
           "missing_libraries"]

try:
    from importlib.metadata import PackageNotFoundError, version as _installed_version
    __version__ = _installed_version("zarrmount")
except PackageNotFoundError:  # imported from the checkout without being installed
    __version__ = "unknown"

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# A wheel built by tools/package carries the binary here, and the shared libraries it needs.
_PACKAGED_BINARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "zarrmount")
_PACKAGED_LIBRARIES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libraries.json")


def _loadable_sonames():
    """The sonames the dynamic loader finds: its cache (ldconfig -p) and $LD_LIBRARY_PATH."""
    names = set()
    for ldconfig in ("/sbin/ldconfig", "/usr/sbin/ldconfig", shutil.which("ldconfig")):
        if ldconfig and os.access(ldconfig, os.X_OK):
            cache = subprocess.run([ldconfig, "-p"], capture_output=True, text=True).stdout
            names.update(line.split()[0] for line in cache.splitlines()[1:] if line.strip())
            break
    for directory in os.environ.get("LD_LIBRARY_PATH", "").split(":"):
        if directory and os.path.isdir(directory):
            names.update(os.listdir(directory))
    return names


def missing_libraries(manifest=_PACKAGED_LIBRARIES, loadable=None):
    """The shared libraries the packaged binary needs and this system lacks, as (soname, Debian
    package) pairs; [] when the package carries no binary."""
    if not os.path.exists(manifest):
        return []
    with open(manifest) as f:
        needed = json.load(f)
    loadable = _loadable_sonames() if loadable is None else loadable
    return [(entry["soname"], entry["package"]) for entry in needed if entry["soname"] not in loadable]


def _check_packaged_binary():
    """The wheel's binary cannot start without its shared libraries: say which are missing and
    how to install them now, rather than at the first mount. $ZARRMOUNT_BIN names another binary
    and skips the check."""
    if os.environ.get("ZARRMOUNT_BIN") or not os.path.exists(_PACKAGED_BINARY):
        return
    missing = missing_libraries()
    if missing:
        raise ImportError(
            "zarrmount's binary needs shared libraries this system does not have: %s. On Debian or Ubuntu: "
            "apt-get install %s (or set ZARRMOUNT_BIN to a zarrmount binary built here)"
            % (", ".join("%s (package %s)" % pair for pair in missing), " ".join(sorted({p for _, p in missing}))))


_check_packaged_binary()


class ZarrmountError(Exception):
    """A zarrmount command failed; the message is the command's own error lines."""

    def __init__(self, args, status, stderr):
        self.command = list(args)
        self.status = status
        self.stderr = stderr
        errors = [line for line in stderr.splitlines() if line.startswith(("error:", "Error:", "skipped:"))]
        super().__init__("\n".join(errors) or stderr.strip()[-2000:] or "zarrmount exited with status %d" % status)


def binary():
    """The zarrmount executable: $ZARRMOUNT_BIN, then the one a wheel carries, then PATH, then
    the checkout's .build."""
    candidates = [os.environ.get("ZARRMOUNT_BIN"), _PACKAGED_BINARY, shutil.which("zarrmount"),
                  os.path.join(_REPO, ".build", "release", "zarrmount"), os.path.join(_REPO, ".build", "debug", "zarrmount")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("zarrmount not found: set ZARRMOUNT_BIN, put it on PATH, or build it (swift build -c release)")


def command(options):
    """CLI flags from keyword arguments: concat_dim="Time" -> --concat-dim Time; True -> a bare
    flag; False or None -> nothing; a list or tuple -> the flag once per item."""
    args = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)):
            for item in value:
                args += [flag, str(item)]
        else:
            args += [flag, str(value)]
    return args


_PROGRESS = re.compile(r"\[[#-]+\] (\d+)/(\d+) files")


def _progress_sink(progress):
    """A function of (files done, files in all) for PROGRESS: a callable as it is; True, a tqdm
    bar when tqdm is installed and the CLI's own lines on stderr otherwise; False, nothing."""
    if callable(progress):
        return progress, lambda: None
    if not progress:
        return (lambda done, total: None), lambda: None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None, lambda: None
    bar = [None]

    def update(done, total):
        if bar[0] is None:
            bar[0] = tqdm(total=total, unit="file", desc="zarrmount scan")
        bar[0].total = total
        bar[0].update(done - bar[0].n)

    def close():
        if bar[0] is not None:
            bar[0].close()

    return update, close


def run(args, binary_path=None, ok=(0,), stdout=False, progress=False):
    """Runs zarrmount with ARGS; returns its stderr (progress lines left out), or its stdout
    when STDOUT; raises ZarrmountError unless the status is in OK. PROGRESS (see
    `_progress_sink`) follows a scan's progress as it goes; the other stderr lines (summary,
    warnings) are echoed as they come."""
    full = [binary_path or binary()] + list(args)
    if not progress:
        p = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode not in ok:
            raise ZarrmountError(full, p.returncode, p.stderr)
        return p.stdout if stdout else p.stderr
    sink, close = _progress_sink(progress)
    # The CLI draws its live bar (every 0.1 s, ending in carriage returns) for a terminal;
    # this variable asks for it through a pipe too, as a daemonised mount's parent does.
    environment = dict(os.environ, ZARRMOUNT_PROGRESS_TERMINAL="1")
    p = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment)
    out = []
    reader = threading.Thread(target=lambda: out.append(p.stdout.read()), daemon=True)
    reader.start()
    kept = []
    pending = b""
    last_line = [0.0]
    try:
        while True:
            data = p.stderr.read1(65536)
            if not data:
                break
            pending += data
            *pieces, pending = re.split(rb"[\r\n]", pending)
            for piece in pieces:
                text = piece.decode("utf-8", "replace").replace("\x1b[2K", "")
                found = _PROGRESS.search(text)
                if found:
                    if sink is None:
                        # The CLI's own line, as often as it prints one off a terminal.
                        done, total = int(found.group(1)), int(found.group(2))
                        if done == total or time.monotonic() - last_line[0] >= 3:
                            last_line[0] = time.monotonic()
                            sys.stderr.write(text + "\n")
                    else:
                        sink(int(found.group(1)), int(found.group(2)))
                elif text.strip():
                    kept.append(text)
                    sys.stderr.write(text + "\n")
        p.wait()
    finally:
        close()
    reader.join()
    stderr = "\n".join(kept + ([pending.decode("utf-8", "replace")] if pending.strip() else []))
    if p.returncode not in ok:
        raise ZarrmountError(full, p.returncode, stderr)
    return (out[0] or b"").decode("utf-8", "replace") if stdout else stderr


def _sources(sources):
    return [sources] if isinstance(sources, (str, os.PathLike)) else [str(s) for s in sources]


def scan(sources, manifest=None, refs=None, binary_path=None, progress=True, **options):
    """`zarrmount scan SOURCES --manifest MANIFEST --refs REFS` with OPTIONS as flags; returns
    the paths written. Files skipped under on_error="skip" are not an error. PROGRESS: True
    (a tqdm bar when tqdm is installed, the CLI's lines otherwise), False, or a function of
    (files done, files in all)."""
    if manifest is None and refs is None:
        raise ValueError("give manifest=PATH.zmf, refs=PATH.json, or both")
    outputs = command({"manifest": manifest and os.fspath(manifest), "refs": refs and os.fspath(refs)})
    run(["scan"] + [str(s) for s in _sources(sources)] + command(options) + outputs, binary_path, ok=(0, 2), progress=progress)
    return [p for p in (manifest, refs) if p is not None]


def merge(parts, manifest=None, refs=None, binary_path=None, **options):
    """`zarrmount merge PARTS --manifest MANIFEST --refs REFS` with the combine OPTIONS."""
    if manifest is None and refs is None:
        raise ValueError("give manifest=PATH.zmf, refs=PATH.json, or both")
    outputs = command({"manifest": manifest and os.fspath(manifest), "refs": refs and os.fspath(refs)})
    run(["merge"] + [os.fspath(p) for p in parts] + command(options) + outputs, binary_path, ok=(0, 2))
    return [p for p in (manifest, refs) if p is not None]


# Mounts this process made and has not unmounted: unmounted at interpreter exit, so a script or
# notebook that forgets (or dies of an exception) leaves no mount behind.
_live_mounts = set()
_live_lock = threading.Lock()


class Mount:
    """A live mount (`zarrmount.mount`): `.path` is the Zarr store's root, `.status()` the
    daemon's live counters, `.unmount()` (or leaving the `with` block) ends it."""

    def __init__(self, path, binary_path, temporary, messages):
        self.path = path
        self.messages = messages
        self._binary = binary_path
        self._temporary = temporary
        self._mounted = True
        with _live_lock:
            _live_mounts.add(self)

    def status(self):
        """`zarrmount status PATH` as a dict: what the mount serves and its counters."""
        return json.loads(run(["status", self.path], self._binary, stdout=True))

    @property
    def mounted(self):
        return self._mounted

    def unmount(self):
        """Unmounts (once; later calls do nothing) and removes a temporary mountpoint."""
        with _live_lock:
            if not self._mounted:
                return
            self._mounted = False
            _live_mounts.discard(self)
        run(["unmount", self.path], self._binary)
        if self._temporary:
            os.rmdir(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.unmount()
        return False

    def __repr__(self):
        return "<zarrmount.Mount %s%s>" % (self.path, "" if self._mounted else " (unmounted)")


@atexit.register
def _unmount_all():
    with _live_lock:
        mounts = list(_live_mounts)
    for live in mounts:
        try:
            live.unmount()
        except Exception:  # noqa: BLE001 (exit goes on: the others still get unmounted)
            pass


def mount(sources=None, mountpoint=None, binary_path=None, progress=True, **options):
    """`zarrmount mount SOURCES MOUNTPOINT` with OPTIONS as flags (concat_dim="Time",
    manifest="all.zmf", decoded=True, ...); returns a `Mount` once the store is ready. Without
    MOUNTPOINT the mount goes in a new temporary directory, removed at unmount. Use it as a
    context manager; mounts left open are unmounted at interpreter exit. Files skipped under
    on_error="skip" are not an error (they are listed in `.messages`). PROGRESS follows the
    scan as for `scan`."""
    temporary = mountpoint is None
    path = tempfile.mkdtemp(prefix="zarrmount-") if temporary else os.fspath(mountpoint)
    listed = [] if sources is None else _sources(sources)
    try:
        messages = run(["mount"] + [os.fspath(s) for s in listed] + command(options) + [path], binary_path, ok=(0, 2),
                       progress=progress)
    except BaseException:
        if temporary:
            os.rmdir(path)
        raise
    return Mount(path, binary_path, temporary, messages)


def open_dataset(sources=None, concat_dim=None, mount_options=None, binary_path=None, progress=True, **xarray_kwargs):
    """The sources mounted (`mount`, with CONCAT_DIM and the CLI options in MOUNT_OPTIONS) and
    opened with `xarray.open_zarr(path, **XARRAY_KWARGS)`; closing the dataset unmounts. The
    mount options are a dict apart because some names are both the CLI's and xarray's
    (`chunks`, `drop_variables`)."""
    import xarray

    options = dict(mount_options or {})
    if concat_dim is not None:
        options["concat_dim"] = concat_dim
    live = mount(sources, binary_path=binary_path, progress=progress, **options)
    try:
        dataset = xarray.open_zarr(live.path, **xarray_kwargs)
    except BaseException:
        live.unmount()
        raise
    close = dataset._close

    def close_and_unmount():
        try:
            if close is not None:
                close()
        finally:
            live.unmount()

    dataset.set_close(close_and_unmount)
    return dataset
