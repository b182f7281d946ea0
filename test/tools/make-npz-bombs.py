"""Writes fixtures/npz-bombs/: small .npz files whose deflated members inflate far beyond what
their npy header needs (issue 12, point 3). Run with Debian's python3 (numpy):
    /usr/bin/python3 test/tools/make-npz-bombs.py
- bomb.npz:       member w.npy = a real (4,) float32 npy followed by 64 MiB of zeros (~64 KB deflated)
- huge-shape.npz: member w.npy whose header declares shape (2**40,) float32 but holds 16 bytes
- ok.npz:         np.savez_compressed of the same (4,) array, for contrast
- big.npz:        an honest 2.4 MB member (zeros), deflated to a few KB
- deflated/:      three tiny checkpoints from np.savez_compressed (their members get inflated)
"""
import io
import os
import zipfile

import numpy as np

out = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'npz-bombs')
os.makedirs(out, exist_ok=True)
arr = np.arange(4, dtype='<f4')

def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()

def write(name, member_bytes):
    with zipfile.ZipFile(os.path.join(out, name), 'w', compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr('w.npy', member_bytes)

write('bomb.npz', npy_bytes(arr) + bytes(64 << 20))

hdr = io.BytesIO()
np.lib.format.write_array_header_1_0(hdr, {'descr': '<f4', 'fortran_order': False, 'shape': (2 ** 40,)})
write('huge-shape.npz', hdr.getvalue() + arr.tobytes())

np.savez_compressed(os.path.join(out, 'ok.npz'), w=arr)

# big.npz: an honest member (600,000 float32 zeros, 2.4 MB inflated, ~2.4 KB deflated) for the
# full-scratch-disk case: its inflation fails on the disk, not on the archive.
np.savez_compressed(os.path.join(out, 'big.npz'), w=np.zeros(600_000, dtype='<f4'))

# deflated/epoch_00{1,2,3}.npz: a tiny trajectory written by np.savez_compressed, so reading it
# inflates members into scratch space (the lenet5 fixtures are stored, not deflated).
rng = np.random.default_rng(12)
w = rng.standard_normal((20, 10)).astype('<f4')
b = rng.standard_normal(10).astype('<f4')
os.makedirs(os.path.join(out, 'deflated'), exist_ok=True)
for t in range(1, 4):
    w = w + 0.1 * rng.standard_normal(w.shape).astype('<f4')
    b = b * 0.9 + 0.05 * t
    np.savez_compressed(os.path.join(out, 'deflated', f'epoch_{t:03d}.npz'), **{'fc.weight': w, 'fc.bias': b})
