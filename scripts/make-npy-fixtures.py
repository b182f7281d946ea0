#!/usr/bin/env python3
"""Writes fixtures/npy-extra/: small .npy/.npz files written by numpy itself, plus expected.json
(what each file holds, C-order values) and headers.json (numpy's exact header bytes for shapes
too large to ship as data). Run from the repo root with numpy 2.4: python3 scripts/make-npy-fixtures.py
"""
import io
import json
import os

import numpy as np
from numpy.lib import _format_impl as npformat

OUT = os.path.join('fixtures', 'npy-extra')
os.makedirs(OUT, exist_ok=True)
for old in os.listdir(OUT):
    os.remove(os.path.join(OUT, old))

expected = {'npy': {}, 'npz': {}, 'writer': {}}


def values(arr):
    return np.ascontiguousarray(arr).ravel(order='C').astype(np.float64).tolist()


def save(name, arr, **kw):
    path = os.path.join(OUT, name)
    np.save(path, arr, **kw)
    return path


def record(name, arr, descr):
    expected['npy'][name] = {'descr': descr, 'shape': list(arr.shape), 'values': values(arr)}


base = np.array([[0.5, -1.25, 3.0], [100.0, -0.0, 7.75]])
ints = np.array([[0, 1, -2], [3, -4, 5]])

# Every supported dtype, little-endian (or '|' for single bytes), shape (2, 3).
for code in ['f2', 'f4', 'f8', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'b1']:
    if code[0] == 'f':
        arr = base.astype('<' + code)
    elif code[0] == 'i':
        arr = (ints * (3 if code != 'i1' else 1)).astype('<' + code)
    elif code[0] == 'u':
        arr = np.abs(ints).astype('<' + code) * 2
    else:
        arr = ints > 0
    name = f'le_{code}.npy'
    save(name, arr)
    record(name, arr, arr.dtype.str)

# Extreme integers that still fit a double exactly.
arr = np.array([-(2**53) + 1, 2**53 - 1, -1], dtype='<i8')
save('i8_extremes.npy', arr)
record('i8_extremes.npy', arr, '<i8')

# Big-endian.
for code in ['f2', 'f4', 'f8', 'i2', 'i4', 'i8', 'u2', 'u4', 'u8']:
    src = np.array([1.5, -2.0, 65504.0 if code == 'f2' else 1e6, 0.25, -3.0]) if code[0] == 'f' else np.array([1, -2, 300, 0, 32000])
    if code[0] == 'u':
        src = np.abs(src)
    arr = src.astype('>' + code)
    name = f'be_{code}.npy'
    save(name, arr)
    record(name, arr, arr.dtype.str)

# Fortran order (np.save keeps F-contiguous arrays column-major).
a2 = np.asfortranarray(np.arange(12, dtype='<f4').reshape(3, 4) * 0.5 - 2)
save('fortran_2d_f4.npy', a2)
record('fortran_2d_f4.npy', a2, '<f4')
a3 = np.asfortranarray((np.arange(24).reshape(2, 3, 4) * 1.25 - 7).astype('>f8'))
save('fortran_3d_be_f8.npy', a3)
record('fortran_3d_be_f8.npy', a3, '>f8')
a4 = np.asfortranarray(np.arange(60, dtype='<i4').reshape(3, 1, 4, 5) - 30)
save('fortran_4d_i4.npy', a4)
record('fortran_4d_i4.npy', a4, '<i4')
a5 = np.asfortranarray((np.arange(210).reshape(5, 6, 7) % 251).astype('|u1'))
save('fortran_3d_u1.npy', a5)
record('fortran_3d_u1.npy', a5, '|u1')


def write_with_header(name, arr, header):
    """numpy's own header writer with a chosen dict (np.save never sets fortran_order on 1-D)."""
    with open(os.path.join(OUT, name), 'wb') as f:
        npformat._write_array_header(f, header, (1, 0))
        f.write(arr.tobytes(order='F'))


a1 = np.array([1.0, 2.0, -3.5], dtype='<f4')
write_with_header('fortran_1d_f4.npy', a1, {'descr': '<f4', 'fortran_order': True, 'shape': (3,)})
record('fortran_1d_f4.npy', a1, '<f4')
at = np.array([[1, 2, 3, 4, 5]], dtype='<i2')
write_with_header('fortran_trivial_i2.npy', at, {'descr': '<i2', 'fortran_order': True, 'shape': (1, 5)})
record('fortran_trivial_i2.npy', at, '<i2')

# Header versions 2.0 and 3.0.
v = np.array([[1.5, 2.5], [-3.5, 4.5]], dtype='<f4')
with open(os.path.join(OUT, 'v2_f4.npy'), 'wb') as f:
    npformat.write_array(f, v, version=(2, 0))
record('v2_f4.npy', v, '<f4')
v3 = np.array([7, -8, 9], dtype='<i2')
with open(os.path.join(OUT, 'v3_i2.npy'), 'wb') as f:
    npformat.write_array(f, v3, version=(3, 0))
record('v3_i2.npy', v3, '<i2')

# 0-d scalars and empty arrays.
for name, arr in [('scalar_f8.npy', np.array(3.25)), ('scalar_i8.npy', np.array(-42, dtype='<i8')),
                  ('empty_f4.npy', np.zeros((0,), '<f4')), ('empty_2d_u1.npy', np.zeros((2, 0), '|u1'))]:
    save(name, arr)
    record(name, arr, arr.dtype.str)

# Files our reader must refuse, with the rule it must name.
refused = {
    'object.npy': (np.array([1, 'a', None], dtype=object), 'npy-object-dtype'),
    'complex.npy': (np.array([1 + 2j], dtype='<c8'), 'npy-dtype-unsupported'),
    'unicode.npy': (np.array(['abc']), 'npy-dtype-unsupported'),
    'bytes.npy': (np.array([b'ab']), 'npy-dtype-unsupported'),
    'datetime.npy': (np.array(['2024-01-01'], dtype='datetime64[D]'), 'npy-dtype-unsupported'),
    'structured.npy': (np.zeros(2, dtype=[('x', '<f4'), ('y', '<i4')]), 'npy-dtype-unsupported'),
    'longdouble.npy': (np.zeros(2, dtype=np.longdouble), 'npy-dtype-unsupported'),
}
expected['refused'] = {}
for name, (arr, rule) in refused.items():
    save(name, arr, allow_pickle=True)
    expected['refused'][name] = rule

# .npz archives: stored, deflated, and one with a pickled member.
members = {
    'features.0.weight': np.arange(6, dtype='<f4').reshape(2, 3) - 2.5,
    'big_endian': np.array([1.0, -2.0, 3.5], dtype='>f8'),
    'fortran': np.asfortranarray(np.arange(12, dtype='<f8').reshape(3, 4) / 4),
    'scalar': np.array(9, dtype='<i8'),
    'flags': np.array([True, False, True]),
}
np.savez(os.path.join(OUT, 'stored.npz'), **members)
np.savez_compressed(os.path.join(OUT, 'compressed.npz'), **members)
expected['npz']['members'] = [{'name': k, 'shape': list(a.shape), 'values': values(a)} for k, a in members.items()]
np.savez(os.path.join(OUT, 'object_member.npz'), ok=np.zeros(2, '<f4'), obj=np.array([{}, 1], dtype=object))

# Writer goldens: np.save of C-order arrays; the test re-encodes the values and compares bytes.
writer_cases = {
    'w_f4_3.npy': np.array([1.0, -2.5, 3.25], '<f4'),
    'w_f8_2x3.npy': base.astype('<f8'),
    'w_f2_scalar.npy': np.array(0.333, '<f2'),
    'w_i8_empty.npy': np.zeros((0,), '<i8'),
    'w_u1_5.npy': np.array([0, 1, 2, 254, 255], '|u1'),
    'w_b1_2x2.npy': np.array([[True, False], [False, True]]),
    'w_i2_9d.npy': np.arange(2 * 3, dtype='<i2').reshape(1, 2, 1, 3, 1, 1, 1, 1, 1) - 3,
    'w_i1_2x0.npy': np.zeros((2, 0), '|i1'),
    'w_u4_4x1.npy': np.array([[7], [8], [9], [2**32 - 1]], '<u4'),
}
for name, arr in writer_cases.items():
    save(name, arr)
    expected['writer'][name] = {'dtype': arr.dtype.str, 'shape': list(arr.shape), 'values': values(arr)}

# Exact header bytes for shapes too large to ship, incl. growth padding edge cases.
header_cases = [
    ('<f4', (123456789012,)), ('<f4', (10**20,)), ('<f8', (2**53 - 1,)), ('|u1', (7, 10**15)),
    ('<i8', (3,) * 30), ('<f2', (1,) * 12), ('|b1', (2**53 - 1, 2)), ('<u2', ()),
]
# A shape whose header lands exactly on a 64-byte boundary (numpy then pads a full 64).
for n in range(1, 40):
    d = {'descr': '<f4', 'fortran_order': False, 'shape': (5,) * n}
    text = "{" + "".join(f"'{k}': {v!r}, " for k, v in sorted(d.items())) + "}" + ' ' * (21 - 1)
    if (10 + len(text) + 1) % 64 == 0:
        header_cases.append(('<f4', (5,) * n))
        break
headers = []
for descr, shape in header_cases:
    buf = io.BytesIO()
    npformat._write_array_header(buf, {'descr': descr, 'fortran_order': False, 'shape': shape})
    headers.append({'descr': descr, 'shape': [str(s) for s in shape], 'hex': buf.getvalue().hex()})
expected['headers'] = headers

with open(os.path.join(OUT, 'expected.json'), 'w') as f:
    json.dump(expected, f, indent=1)
print('wrote', len(os.listdir(OUT)), 'files to', OUT)
