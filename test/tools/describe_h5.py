"""Prints an HDF5 file's full layout as JSON, read by h5py: every group and dataset in
visiting order with its kind, shape, dtype, chunking, compression, attributes and values
(as float64 lists). Used by test/formats/keras-h5.test.ts to compare our output with its input.

Usage: /usr/bin/python3 test/tools/describe_h5.py FILE.h5
"""
import json
import sys

import h5py
import numpy as np


def attrs(obj):
    out = {}
    for k, v in obj.attrs.items():
        out[k] = v.decode() if isinstance(v, bytes) else (v.tolist() if hasattr(v, "tolist") else v)
    return out


def main(path):
    items = []
    with h5py.File(path, "r") as f:
        items.append({"path": "/", "kind": "group", "attrs": attrs(f)})

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                items.append({
                    "path": name, "kind": "dataset", "shape": list(obj.shape), "dtype": obj.dtype.str,
                    "chunks": obj.chunks, "compression": obj.compression, "attrs": attrs(obj),
                    "values": np.asarray(obj[()], dtype=np.float64).reshape(-1).tolist(),
                })
            else:
                items.append({"path": name, "kind": "group", "attrs": attrs(obj)})

        f.visititems(visit)
    json.dump(items, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
