"""Writes two files with one 1,000,000-chunk dataset each (v1 B-tree and fixed-array indexes)
and times libhdf5's own chunk enumeration (h5py chunk_iter) on them as the baseline row."""
import os
import sys
import time

import h5py
import numpy as np

out = sys.argv[1]
specs = [("million-chunks-btree-v1.h5", "earliest"), ("million-chunks-fixed-array.h5", "latest")]
for name, libver in specs:
    path = os.path.join(out, name)
    if not os.path.exists(path):
        with h5py.File(path + ".tmp", "w", libver=(libver, "latest")) as f:
            space = h5py.h5s.create_simple((1000, 1000))
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_chunk((1, 1))
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            h5py.h5d.create(f.id, b"data", h5py.h5t.NATIVE_UINT8, space, dcpl=dcpl)
        os.replace(path + ".tmp", path)

print("baseline: libhdf5 %s chunk_iter over the same datasets" % h5py.version.hdf5_version)
print("file                                      chunks     seconds   chunks/s")
for name, _ in specs:
    path = os.path.join(out, name)
    start = time.perf_counter()
    with h5py.File(path, "r") as f:
        count = [0]
        def visit(info):
            count[0] += 1
        f["data"].id.chunk_iter(visit)
    elapsed = time.perf_counter() - start
    print("%-40s  %8d  %10.3f  %8.2fM" % (name, count[0], elapsed, count[0] / elapsed / 1e6))
print()
