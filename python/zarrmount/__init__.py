"""zarrmount from Python: the CLI's commands as functions (each runs the `zarrmount` binary)."""
import os
import shutil
import subprocess

__all__ = ["ZarrmountError", "binary", "command", "scan", "merge"]

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ZarrmountError(Exception):
    """A zarrmount command failed; the message is the command's own error lines."""

    def __init__(self, args, status, stderr):
        self.command = list(args)
        self.status = status
        self.stderr = stderr
        errors = [line for line in stderr.splitlines() if line.startswith(("error:", "Error:", "skipped:"))]
        super().__init__("\n".join(errors) or stderr.strip()[-2000:] or "zarrmount exited with status %d" % status)


def binary():
    """The zarrmount executable: $ZARRMOUNT_BIN, then PATH, then the checkout's .build."""
    candidates = [os.environ.get("ZARRMOUNT_BIN"), shutil.which("zarrmount"),
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


def run(args, binary_path=None, ok=(0,)):
    """Runs zarrmount with ARGS; returns its stderr (progress and warnings); raises
    ZarrmountError unless the status is in OK."""
    full = [binary_path or binary()] + list(args)
    p = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode not in ok:
        raise ZarrmountError(full, p.returncode, p.stderr)
    return p.stderr


def _sources(sources):
    return [sources] if isinstance(sources, (str, os.PathLike)) else [str(s) for s in sources]


def scan(sources, manifest=None, refs=None, binary_path=None, **options):
    """`zarrmount scan SOURCES --manifest MANIFEST --refs REFS` with OPTIONS as flags; returns
    the paths written. Files skipped under on_error="skip" are not an error."""
    if manifest is None and refs is None:
        raise ValueError("give manifest=PATH.zmf, refs=PATH.json, or both")
    outputs = command({"manifest": manifest and os.fspath(manifest), "refs": refs and os.fspath(refs)})
    run(["scan"] + [str(s) for s in _sources(sources)] + command(options) + outputs, binary_path, ok=(0, 2))
    return [p for p in (manifest, refs) if p is not None]


def merge(parts, manifest=None, refs=None, binary_path=None, **options):
    """`zarrmount merge PARTS --manifest MANIFEST --refs REFS` with the combine OPTIONS."""
    if manifest is None and refs is None:
        raise ValueError("give manifest=PATH.zmf, refs=PATH.json, or both")
    outputs = command({"manifest": manifest and os.fspath(manifest), "refs": refs and os.fspath(refs)})
    run(["merge"] + [os.fspath(p) for p in parts] + command(options) + outputs, binary_path, ok=(0, 2))
    return [p for p in (manifest, refs) if p is not None]
