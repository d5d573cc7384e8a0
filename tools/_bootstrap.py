"""Shared start-up for the Python tools in tools/: run them under the repository's .venv.

Each tool starts with

    sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))  # tools/, for _bootstrap
    import _bootstrap  # noqa: E402
    _REPO = _bootstrap.use_repo_venv(__file__)

which works whether the tool is run as `tools/NAME`, `python3 tools/NAME` or
`.venv/bin/python tools/NAME`, from any working directory, and through a symlink.

Only the standard library may be imported here: this runs before the .venv is in use.
"""

import os
import sys


def use_repo_venv(script, warn_if_missing=False):
    """Re-executes `script` (the caller's __file__) under REPO/.venv/bin/python, with the same
    arguments, unless this interpreter is already that venv's or $ZARRMOUNT_NO_REEXEC is set.

    REPO is the parent of the directory holding the script (after resolving symlinks). If the
    venv's python is missing the tool carries on with the current interpreter; with
    warn_if_missing it first says so on stderr. Returns REPO.
    """
    script = os.path.realpath(script)
    repo = os.path.dirname(os.path.dirname(script))
    venv = os.path.join(repo, ".venv")
    if os.path.realpath(sys.prefix) != os.path.realpath(venv) and not os.environ.get("ZARRMOUNT_NO_REEXEC"):
        py = os.path.join(venv, "bin", "python")
        if os.path.exists(py):
            os.execv(py, [py, script] + sys.argv[1:])
        if warn_if_missing:
            sys.stderr.write("warning: %s missing (run tools/setup); using %s\n" % (py, sys.executable))
    return repo
