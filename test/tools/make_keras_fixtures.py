"""Writes fixtures/keras-h5/: Keras 3 `.weights.h5` checkpoints and `.keras` archives, by h5py.

Keras cannot be installed on the build machine, so this script writes the files the way Keras
3's saving code does (keras/src/saving/saving_lib.py: `save_weights_only` -> `H5IOStore`,
`H5Entry`, `_save_state`, `_save_container_state`; described in docs/formats.md):

- every saveable object gets a group at its attribute path with a `vars` sub-group, even when it
  has no variables (the model itself: `/vars`);
- the layers of a Sequential/Functional model are the container `layers`, each layer named by
  its class in snake_case, repeated classes numbered `dense`, `dense_1`, ...; a nested model
  repeats the pattern (`layers/functional/layers/dense/vars/0`);
- variables are datasets named by their index `0`, `1`, ... written with `group[key] = value`
  (contiguous, uncompressed), Dense: kernel, bias; BatchNormalization: gamma, beta,
  moving_mean, moving_variance;
- the optimizer's variables live under `optimizer/vars` (iterations, learning_rate, then the
  Adam moments).

The weights follow a smooth synthetic trajectory (a few shared time profiles plus noise), one
checkpoint per epoch, as `ModelCheckpoint(filepath="epoch_{epoch:02d}.weights.h5",
save_weights_only=True)` names them. A `.keras` archive is a zip (stored, as Python's zipfile
writes by default) of metadata.json, config.json and model.weights.h5.

Run with Debian's interpreter: /usr/bin/python3 test/tools/make_keras_fixtures.py
"""
import io
import json
import os
import sys
import zipfile

import h5py
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "keras-h5")

# (path of the layer, list of variable shapes)
LAYERS = [
    ("layers/dense", [(12, 16), (16,)]),
    ("layers/batch_normalization", [(16,), (16,), (16,), (16,)]),
    ("layers/functional/layers/dense", [(16, 8), (8,)]),
    ("layers/functional/layers/dense_1", [(8, 8), (8,)]),
    ("layers/dense_1", [(8, 3), (3,)]),
]
EMPTY_VARS = ["vars", "layers/functional/vars"]


def trajectory(seed, epochs):
    """Per-variable values at each epoch: w(t) = w0 + sum_k a_k * p_k(t) + small noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, epochs + 1, dtype=np.float64)
    profiles = [1 - np.exp(-t / 2.0), 1 - np.exp(-t / 6.0), np.sin(t / 3.0)]
    out = []
    for path, shapes in LAYERS:
        vals = []
        for i, shape in enumerate(shapes):
            w0 = rng.normal(0, 0.3, size=shape)
            if path.endswith("batch_normalization") and i == 0:
                w0 = 1 + 0.1 * w0
            if path.endswith("batch_normalization") and i == 3:
                w0 = 1 + np.abs(w0)
            mix = [rng.normal(0, 0.2, size=shape) for _ in profiles]
            noise = rng.normal(0, 0.01, size=(epochs,) + shape)
            vals.append([(w0 + sum(m * p[e] for m, p in zip(mix, profiles)) + noise[e]).astype(np.float32) for e in range(epochs)])
        out.append(vals)
    return out


def write_weights(target, values, epoch, n_params):
    with h5py.File(target, "w") as f:
        for g in EMPTY_VARS:
            f.create_group(g)
        for (path, shapes), vals in zip(LAYERS, values):
            grp = f.create_group(path).create_group("vars")
            for i in range(len(shapes)):
                grp[str(i)] = vals[i][epoch]
        opt = f.create_group("optimizer").create_group("vars")
        opt["0"] = np.int64(epoch * 40)
        opt["1"] = np.float32(0.001)
        for i in range(2 * n_params):
            opt[str(i + 2)] = np.full((2,), 0.01 * epoch, dtype=np.float32)


def main():
    epochs = 5
    values = trajectory(7, epochs)
    n_params = sum(len(s) for _, s in LAYERS)
    run = os.path.join(ROOT, "run")
    os.makedirs(run, exist_ok=True)
    for e in range(epochs):
        write_weights(os.path.join(run, f"epoch_{e + 1:02d}.weights.h5"), values, e, n_params)
    arch = os.path.join(ROOT, "archives")
    os.makedirs(arch, exist_ok=True)
    config = {"module": "keras", "class_name": "Sequential", "config": {"name": "sequential"}}
    for e in range(3):
        buf = io.BytesIO()
        write_weights(buf, values, e, n_params)
        with zipfile.ZipFile(os.path.join(arch, f"model_epoch{e + 1}.keras"), "w") as zf:
            zf.writestr("metadata.json", json.dumps({"keras_version": "3.8.0", "date_saved": "2026-12-05@15:00:00"}))
            zf.writestr("config.json", json.dumps(config))
            zf.writestr("model.weights.h5", buf.getvalue())
    print(f"h5py {h5py.__version__}, HDF5 {h5py.version.hdf5_version}, numpy {np.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
