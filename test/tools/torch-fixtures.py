"""Writes fixtures/torch/: real torch.save files (Debian's python3-torch 1.13) and hostile ones.

Run with Debian's interpreter from the repository root:  /usr/bin/python3 test/tools/torch-fixtures.py
Every file is small (a few KB). See fixtures/torch/README.md for what each one is.
"""
import collections
import functools
import io
import json
import os
import pickle
import shutil
import struct
import zipfile

import numpy as np
import torch

OUT = os.path.join('fixtures', 'torch')


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 16)
        self.bn = torch.nn.BatchNorm1d(16)
        self.fc2 = torch.nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


class LitConfig:
    """Stands in for a user's own class pickled into Lightning's hyper_parameters."""

    def __init__(self, width):
        self.width = width


def write_safetensors(path, tensors):
    """Minimal safetensors writer (the format is an 8-byte length, a JSON header, raw bytes)."""
    names = sorted(tensors, key=lambda n: n)
    header, offset, blobs = {}, 0, []
    codes = {torch.float32: 'F32', torch.int64: 'I64'}
    for n in names:
        t = tensors[n].contiguous()
        b = t.numpy().tobytes()
        header[n] = {'dtype': codes[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * ((8 - len(text) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)) + text + b''.join(blobs))


def trajectory(n):
    """n state_dicts of a small MLP along a smooth made-up training path."""
    torch.manual_seed(0)
    model = Mlp()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    drift = {k: torch.randn_like(v) if v.is_floating_point() else None for k, v in start.items()}
    out = []
    for i in range(n):
        sd = collections.OrderedDict()
        for k, v in start.items():
            if v.is_floating_point():
                sd[k] = v + 0.1 * (1 - 0.7 ** (i + 1)) * drift[k]
            else:
                sd[k] = v + i  # num_batches_tracked, an I64 buffer
        out.append(sd)
    return out


def rewrite_zip(src, dst, transform):
    """Copies a zip entry by entry through transform(name, data) -> [(name, data, compress)]."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, 'w') as zout:
        for info in zin.infolist():
            for name, data, compress, zip64 in transform(info.filename, zin.read(info.filename)):
                zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                zi.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
                with zout.open(zi, 'w', force_zip64=zip64) as w:
                    w.write(data)


def keep(name, data):
    return [(name, data, False, False)]


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    sds = trajectory(4)

    # Plain state_dicts, and the same weights as safetensors (byte-equality of the results).
    os.makedirs(f'{OUT}/plain')
    os.makedirs(f'{OUT}/plain-safetensors')
    for i, sd in enumerate(sds):
        torch.save(sd, f'{OUT}/plain/epoch_{i + 1}.pt')
        write_safetensors(f'{OUT}/plain-safetensors/epoch_{i + 1}.safetensors', sd)

    # Lightning 2.x-shaped checkpoints: its real top-level keys, functools.partial and a user
    # class in hyper_parameters, optimizer state holding tensors, and last.ckpt.
    os.makedirs(f'{OUT}/lightning/checkpoints')
    for i, sd in enumerate(sds[:3]):
        step = (i + 1) * 100
        ckpt = {
            'epoch': i,
            'global_step': step,
            'pytorch-lightning_version': '2.1.0',
            'state_dict': collections.OrderedDict(('model.' + k, v) for k, v in sd.items()),
            'loops': {'fit_loop': {'state_dict': {}, 'epoch_progress': {'current': {'completed': i}}}},
            'callbacks': {"ModelCheckpoint{'monitor': None}": {'best_model_score': None}},
            'optimizer_states': [{'state': {0: {'step': torch.tensor(float(step)), 'exp_avg': torch.zeros(16, 8)}}, 'param_groups': [{'lr': 0.1, 'params': [0]}]}],
            'lr_schedulers': [],
            'hparams_name': 'kwargs',
            'hyper_parameters': {'optimizer': functools.partial(torch.optim.Adam, lr=0.1), 'config': LitConfig(16), 'dtype': torch.float32},
        }
        torch.save(ckpt, f'{OUT}/lightning/checkpoints/epoch={i}-step={step}.ckpt')
    shutil.copy(f'{OUT}/lightning/checkpoints/epoch=2-step=300.ckpt', f'{OUT}/lightning/checkpoints/last.ckpt')

    # A training script's dict: model_state_dict, an EMA copy, optimizer state; DDP prefixes.
    ema = collections.OrderedDict((k, v * 0.5) for k, v in sds[0].items())
    torch.save({'epoch': 3, 'model_state_dict': collections.OrderedDict(('module.' + k, v) for k, v in sds[0].items()),
                'ema': ema, 'optimizer_state_dict': {'state': {}, 'param_groups': []}}, f'{OUT}/nested.pt')
    torch.save({'encoder': {'w': torch.ones(2)}, 'decoder': {'w': torch.ones(2)}}, f'{OUT}/no-rule.pt')

    # Hugging Face Trainer folders: pytorch_model.bin, and a sharded pytorch_model.bin.index.json.
    for i, sd in enumerate(sds[:3]):
        d = f'{OUT}/hf/checkpoint-{(i + 1) * 10}'
        os.makedirs(d)
        torch.save(sd, f'{d}/pytorch_model.bin')
        torch.save({'state': {}, 'param_groups': []}, f'{d}/optimizer.pt')
        with open(f'{d}/config.json', 'w') as f:
            json.dump({'model_type': 'mlp'}, f)
        with open(f'{d}/trainer_state.json', 'w') as f:
            json.dump({'global_step': (i + 1) * 10}, f)
        d = f'{OUT}/hf-sharded/checkpoint-{(i + 1) * 10}'
        os.makedirs(d)
        keys = list(sd)
        parts = [keys[: len(keys) // 2], keys[len(keys) // 2:]]
        weight_map = {}
        for p, names in enumerate(parts):
            shard = f'pytorch_model-{p + 1:05d}-of-00002.bin'
            torch.save(collections.OrderedDict((k, sd[k]) for k in names), f'{d}/{shard}')
            weight_map.update({k: shard for k in names})
        with open(f'{d}/pytorch_model.bin.index.json', 'w') as f:
            json.dump({'metadata': {'total_size': 0}, 'weight_map': weight_map}, f, indent=2)

    # Every dtype safetensors shares with torch 1.13, shared storages and non-contiguous views.
    torch.manual_seed(1)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
    kinds = collections.OrderedDict()
    kinds['f32'] = torch.randn(3, 5)
    kinds['f64'] = torch.randn(2, 3, dtype=torch.float64)
    kinds['f16'] = torch.randn(4, 3).half()
    kinds['bf16'] = torch.randn(4, 3).bfloat16()
    kinds['i64'] = torch.arange(-3, 3, dtype=torch.int64)
    kinds['i32'] = torch.arange(-4, 4, dtype=torch.int32).reshape(2, 4)
    kinds['i16'] = torch.arange(5, dtype=torch.int16)
    kinds['i8'] = torch.arange(-2, 3, dtype=torch.int8)
    kinds['u8'] = torch.arange(250, 256, dtype=torch.uint8)
    kinds['bool'] = torch.tensor([True, False, True])
    kinds['base'] = base
    kinds['transposed'] = base.t()            # shares base's storage, strides (1, 6)
    kinds['row_slice'] = base[1:3]            # shares, storage offset 6
    kinds['col_slice'] = base[:, 2:5]         # shares, non-contiguous rows
    kinds['every_other'] = base[:, ::2]       # stride 2 inner axis
    kinds['scalar'] = torch.tensor(2.5)
    kinds['empty'] = torch.zeros(0, 3)
    torch.save(kinds, f'{OUT}/kinds.pt')
    expected = {}
    for k, v in kinds.items():
        c = v.contiguous()
        expected[k] = c.view(torch.int16).numpy() if c.dtype == torch.bfloat16 else c.numpy()
    np.savez(f'{OUT}/kinds-expected.npz', **expected)

    # The same archive with every entry in ZIP64 form, and with torch 2.x's extra records.
    rewrite_zip(f'{OUT}/kinds.pt', f'{OUT}/kinds-zip64.pt', lambda n, d: [(n, d, False, True)])

    def torch2(name, data):
        out = [(name, data, False, False)]
        if name.endswith('/data.pkl'):
            prefix = name[: -len('data.pkl')]
            out += [(prefix + 'byteorder', b'little', False, False),
                    (prefix + '.data/serialization_id', b'1234567890123456789012345678901234567890', False, False)]
        return out
    rewrite_zip(f'{OUT}/kinds.pt', f'{OUT}/kinds-torch2.pt', torch2)

    # Legacy (pre-1.6) format and a TorchScript archive: refused.
    os.makedirs(f'{OUT}/refused')
    torch.save(sds[0], f'{OUT}/refused/legacy.pt', _use_new_zipfile_serialization=False)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), f'{OUT}/refused/torchscript.pt')

    # Hostile files. The payload of each code-running one would create ./cmd-pwned in the
    # working folder if it were unpickled by Python (the test proves that, then that cmd
    # does not).
    hostile = f'{OUT}/hostile'
    os.makedirs(hostile)
    good = f'{OUT}/plain/epoch_1.pt'

    class System:
        def __reduce__(self):
            return (os.system, ('touch cmd-pwned',))

    class Eval:
        def __reduce__(self):
            return (eval, ("open('cmd-pwned', 'w').close()",))

    def with_pickle(dst, obj_bytes):
        rewrite_zip(good, dst, lambda n, d: [(n, obj_bytes if n.endswith('/data.pkl') else d, False, False)])

    buf = io.BytesIO()
    pickle.Pickler(buf, protocol=2).dump(System())
    with_pickle(f'{hostile}/system.pt', buf.getvalue())

    # eval hidden outside the tensor tree, next to a valid state_dict.
    buf = io.BytesIO()

    class SavePid(pickle.Pickler):
        """Pickles {'state_dict': <tensors as torch does>, 'hyper_parameters': Eval()}."""

        def persistent_id(self, obj):
            if isinstance(obj, torch.storage.TypedStorage):
                return ('storage', torch.FloatStorage if obj.dtype == torch.float32 else torch.LongStorage, str(self.keys.setdefault(id(obj._storage), len(self.keys))), 'cpu', obj.size())
            return None
    sd = collections.OrderedDict((k, v) for k, v in sds[0].items())
    p = SavePid(buf, protocol=2)
    p.keys = {}
    p.dump({'state_dict': sd, 'hyper_parameters': {'x': Eval()}})
    with_pickle(f'{hostile}/eval-in-hparams.pt', buf.getvalue())

    # An unknown global on a tensor's path.
    buf = io.BytesIO()
    p = SavePid(buf, protocol=2)
    p.keys = {}
    p.dump({'fc1.weight': sds[0]['fc1.weight'], 'fc1.bias': LitConfig(3)})
    with_pickle(f'{hostile}/unknown-global.pt', buf.getvalue())

    # Structural damage.
    def truncated(n, d):
        return [(n, d[: len(d) // 2] if n.endswith('/data.pkl') else d, False, False)]
    rewrite_zip(good, f'{hostile}/truncated-pkl.pt', truncated)
    rewrite_zip(good, f'{hostile}/missing-storage.pt', lambda n, d: [] if n.endswith('/data/0') else [(n, d, False, False)])
    rewrite_zip(good, f'{hostile}/short-storage.pt', lambda n, d: [(n, d[: len(d) // 2] if n.endswith('/data/0') else d, False, False)])
    rewrite_zip(good, f'{hostile}/compressed-storage.pt', lambda n, d: [(n, d, '/data/' in n, False)])
    rewrite_zip(good, f'{hostile}/traversal.pt', lambda n, d: [(n, d, False, False)] + ([('../../cmd-pwned', b'x', False, False)] if n.endswith('/data.pkl') else []))
    with open(good, 'rb') as f:
        whole = f.read()
    with open(f'{hostile}/truncated-file.pt', 'wb') as f:
        f.write(whole[: len(whole) - 200])


if __name__ == '__main__':
    main()
