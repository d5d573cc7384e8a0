#!/usr/bin/env python3
"""Seeds for tools/fuzz's CodecFuzz: each filtered variable's first stored chunk of
plugins/filters-plugins.h5 behind the 8-byte header that chooses its decoder (see
tools/fuzz/Sources/CodecFuzz/Fuzz.swift). Usage: codec-seeds.py FILTERS_PLUGINS_H5 CORPUS_DIR"""
import os
import sys

import h5py
import hdf5plugin  # noqa: F401 - registers the plugin filters' ids with h5py

# HDF5 filter id -> the harness's codec choice.
CHOICE = {32015: 3, 307: 4, 32001: 5, 32004: 6, 32000: 7, 4: 8, 32008: 9, 6: 10, 5: 11}
SIZE_INDEX = {1: 0, 2: 1, 4: 2, 8: 3}


def main(path, corpus):
    os.makedirs(corpus, exist_ok=True)
    written = 0
    with h5py.File(path, "r") as f:
        for name, dataset in f.items():
            plist = dataset.id.get_create_plist()
            ids = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
            if ids == [2, 1]:
                choice = 14
            elif len(ids) == 1 and ids[0] in CHOICE:
                choice = CHOICE[ids[0]]
                if ids[0] == 5 and dataset.dtype.kind == "f":
                    choice = 12
            else:
                continue
            if dataset.chunks is None or dataset.dtype.itemsize not in SIZE_INDEX:
                continue
            elements = 1
            for extent in dataset.chunks:
                elements *= extent
            if elements > 4095:
                continue
            stored = dataset.id.read_direct_chunk((0,) * dataset.ndim)[1]
            header = bytes([choice, SIZE_INDEX[dataset.dtype.itemsize], elements >> 4, elements & 0x0F, 0, 0, 0, 0])
            with open(os.path.join(corpus, "chunk-" + name), "wb") as out:
                out.write(header + stored)
            written += 1
    print("codec-seeds: %d seeds in %s" % (written, corpus))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
