"""zarrmount's scans on a Dask cluster: one task per shard of the listing, each running
`zarrmount scan --shard I/N` on a worker, then one `zarrmount merge` of the parts."""
import glob
import os
import tempfile

from . import _sources, binary, command, merge, run

# Options that only the merge needs: everything else (the sources' access, the variables, the
# mapping) is given to both, as a single scan would have them.
_SCAN_ONLY = {"concurrency", "connections"}


def scan_shard(index, count, sources, workdir, options, binary_path=None):
    """Scans shard INDEX of COUNT into WORKDIR/part-INDEX-of-COUNT.zmf and returns its path. The
    part is written under a temporary name and renamed, so a worker lost mid-write leaves no
    half part for the merge to find."""
    final = os.path.join(workdir, "part-%05d-of-%05d.zmf" % (index, count))
    fd, partial = tempfile.mkstemp(prefix=".part-%05d-of-%05d-" % (index, count), suffix=".zmf", dir=workdir)
    os.close(fd)
    try:
        run(["scan"] + _sources(sources) + command(options) + ["--shard", "%d/%d" % (index, count), "--manifest", partial],
            binary_path, ok=(0, 2))
        os.replace(partial, final)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return final


def scan(sources, n_shards, client, manifest, refs=None, workdir=None, binary_path=None, **options):
    """Scans SOURCES in N_SHARDS tasks on the dask.distributed CLIENT and merges them into
    MANIFEST (and REFS); returns MANIFEST. Each task runs the CLI on its worker, so workers need
    the binary (BINARY_PATH, else zarrmount.binary() on the worker) and WORKDIR, a directory all
    of them and this process share (default: MANIFEST's directory). Dask runs a shard again when
    its worker dies (its `allowed-failures` bounds how often)."""
    if n_shards < 1:
        raise ValueError("n_shards must be at least 1")
    workdir = os.path.abspath(workdir or os.path.dirname(os.path.abspath(os.fspath(manifest))))
    os.makedirs(workdir, exist_ok=True)
    sources = _sources(sources)
    futures = client.map(scan_shard, range(n_shards), count=n_shards, sources=sources, workdir=workdir, options=options,
                         binary_path=binary_path, pure=False)
    parts = client.gather(futures)
    combine = {k: v for k, v in options.items() if k not in _SCAN_ONLY}
    merge(parts, manifest=manifest, refs=refs, binary_path=binary_path or binary(), **combine)
    # A worker killed between creating its temporary part and renaming it leaves the file; its
    # shard was scanned again elsewhere, so what is left of this scan's temporaries goes.
    for leftover in glob.glob(os.path.join(workdir, ".part-*-of-%05d-*.zmf" % n_shards)):
        os.remove(leftover)
    return manifest
