"""A numpy-only checker of a safetensors file against the format's rules (the reference Rust
reader's validation), used by the tests on cmd-model.safetensors. Prints a JSON summary of the
tensors on success; exits 1 with the broken rule otherwise.

Usage: python3 check_safetensors.py FILE
"""
import json
import struct
import sys

import numpy as np

DTYPES = {'F64': np.float64, 'F32': np.float32, 'F16': np.float16, 'I64': np.int64, 'I32': np.int32,
          'I16': np.int16, 'I8': np.int8, 'U8': np.uint8, 'U16': np.uint16, 'U32': np.uint32,
          'U64': np.uint64, 'BOOL': np.bool_}


def fail(rule):
    print(f'INVALID: {rule}')
    sys.exit(1)


path = sys.argv[1]
with open(path, 'rb') as f:
    data = f.read()
if len(data) < 8:
    fail('file shorter than 8 bytes')
(n,) = struct.unpack('<Q', data[:8])
if n > 100_000_000:
    fail('header larger than 100,000,000 bytes')
if 8 + n > len(data):
    fail('header beyond the end of the file')
try:
    header = json.loads(data[8:8 + n].decode('utf-8'))
except Exception as e:  # noqa: BLE001
    fail(f'header is not UTF-8 JSON: {e}')
if not isinstance(header, dict):
    fail('header is not an object')
meta = header.pop('__metadata__', None)
if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
    fail('__metadata__ is not a map of strings')
entries = sorted(header.items(), key=lambda kv: kv[1]['data_offsets'][0])
end = 0
summary = {}
for name, e in entries:
    if e['dtype'] not in DTYPES:
        fail(f'{name}: unknown dtype {e["dtype"]}')
    shape = e['shape']
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        fail(f'{name}: bad shape {shape}')
    b, t = e['data_offsets']
    if b != end:
        fail(f'{name}: begins at {b}, previous tensor ended at {end} (gap or overlap)')
    if t < b:
        fail(f'{name}: end before begin')
    size = int(np.prod(shape, dtype=np.int64)) * np.dtype(DTYPES[e['dtype']]).itemsize
    if t - b != size:
        fail(f'{name}: {t - b} bytes for shape {shape} {e["dtype"]} ({size} expected)')
    if 8 + n + t > len(data):
        fail(f'{name}: data beyond the end of the file')
    arr = np.frombuffer(data, dtype=DTYPES[e['dtype']], count=int(np.prod(shape, dtype=np.int64)), offset=8 + n + b)
    summary[name] = {'dtype': e['dtype'], 'shape': shape, 'finite': bool(np.all(np.isfinite(arr))) if arr.dtype.kind == 'f' else True}
    end = t
if 8 + n + end != len(data):
    fail(f'data ends at {8 + n + end}, file has {len(data)} bytes')
if n % 8 != 0:
    fail('header length is not a multiple of 8 (reference writers pad it)')
print(json.dumps({'tensors': summary, 'metadata_keys': sorted((meta or {}).keys())}))
