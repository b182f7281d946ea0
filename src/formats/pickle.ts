/**
 * A pickle reader that never imports or calls anything (docs/formats.md, "PyTorch").
 *
 * Python's unpickler runs code by design: GLOBAL imports a name and REDUCE calls it. Here the
 * same opcodes only build an inert value tree: a global is a `PyGlobal` naming module and
 * attribute, a call is a `PyObject` recording what would have been called with which arguments.
 * Interpreting that tree (which calls mean "a tensor") is the job of the caller
 * (`formats/torch.ts`). Globals that can run code are refused as soon as they are named, so a
 * hostile pickle fails the same way whatever the caller does with the tree.
 *
 * Covered: every opcode of protocols 0–5 that builds data, plus the memo, marks, persistent ids,
 * GLOBAL/STACK_GLOBAL/REDUCE/BUILD/NEWOBJ(_EX)/INST/OBJ as inert nodes. EXT1/2/4 (the
 * copyreg extension registry) and out-of-band buffers are refused.
 */

export class PickleError extends Error {
  constructor(
    message: string,
    /** Stable id: 'pickle-truncated', 'pickle-opcode', 'pickle-global-forbidden', 'pickle-corrupt'. */
    readonly rule: string,
  ) {
    super(message);
    this.name = 'PickleError';
  }
}

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}
export class PyList {
  constructor(readonly items: PyValue[]) {}
}
/** A dict, keeping insertion order and keys of any type; `cls` is set for OrderedDict & co. */
export class PyDict {
  readonly entries: [PyValue, PyValue][] = [];
  /** Position of each string/number key in `entries` (state_dicts have tens of thousands). */
  readonly index = new Map<string | number, number>();
  /** BUILD state applied to the dict (OrderedDict's `_metadata` in a state_dict). */
  state: PyValue | undefined;
  constructor(readonly cls?: PyGlobal) {}
  get(key: string): PyValue | undefined {
    const i = this.index.get(key);
    return i === undefined ? undefined : this.entries[i][1];
  }
  /** Python's `d[key] = value`: a repeated key keeps its place and takes the new value. */
  set(key: PyValue, value: PyValue): void {
    if (typeof key === 'string' || typeof key === 'number') {
      const i = this.index.get(key);
      if (i !== undefined) {
        this.entries[i] = [key, value];
        return;
      }
      this.index.set(key, this.entries.length);
    }
    this.entries.push([key, value]);
  }
}
export class PySet {
  constructor(readonly items: PyValue[], readonly frozen: boolean) {}
}
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}
/** What a call (REDUCE, NEWOBJ, INST, OBJ) would have produced: nothing is called. */
export class PyObject {
  state: PyValue | undefined;
  readonly listItems: PyValue[] = [];
  readonly dictItems: [PyValue, PyValue][] = [];
  constructor(
    readonly callee: PyValue,
    readonly args: PyValue,
    readonly kwargs?: PyValue,
  ) {}
}
/** A persistent id (BINPERSID/PERSID): torch stores its storages' keys this way. */
export class PyPersistent {
  constructor(readonly id: PyValue) {}
}

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyTuple
  | PyList
  | PyDict
  | PySet
  | PyGlobal
  | PyObject
  | PyPersistent;

/**
 * Modules whose names alone say "this pickle wants to run code". `torch.load(weights_only=True)`
 * refuses them too; listing them lets the error say what the file tried to do.
 */
const FORBIDDEN_MODULES = [
  'os', 'posix', 'nt', 'subprocess', 'sys', 'importlib', 'runpy', 'shutil', 'pty', 'socket',
  'ctypes', 'pickle', '_pickle', 'marshal', 'code', 'codeop', 'types', 'webbrowser',
  'multiprocessing', 'asyncio', 'pdb', 'bdb', 'timeit', 'operator', '_operator', 'inspect',
  'commands', 'popen2', 'platform', 'signal', 'threading', '_thread', 'ssl', 'http', 'urllib',
  'ftplib', 'smtplib', 'telnetlib', 'tempfile', 'io', '_io', 'pathlib', 'glob', 'zipimport',
  'torch.hub', 'torch.jit', 'torch.package', 'torch.ops', 'torch._ops', 'torch.utils.cpp_extension',
  'numpy.testing', 'numpy.f2py', 'numpy.distutils',
];

/** builtins that only build data; every other builtin (eval, exec, getattr, open, …) is refused. */
const INERT_BUILTINS = new Set([
  'set', 'frozenset', 'bytearray', 'bytes', 'slice', 'complex', 'int', 'float', 'str', 'bool',
  'list', 'dict', 'tuple', 'range', 'object', 'NoneType', 'Ellipsis', 'NotImplemented',
]);

/** Why a global is refused anywhere in a file, or undefined when naming it is harmless. */
export function forbiddenGlobal(module: string, name: string): string | undefined {
  if (module === 'builtins' || module === '__builtin__' || module === '__builtins__') {
    return INERT_BUILTINS.has(name) ? undefined : 'a Python builtin that can run code';
  }
  for (const m of FORBIDDEN_MODULES) {
    if (module === m || module.startsWith(`${m}.`)) return 'a module that can run code';
  }
  if (/^(eval|exec|compile|system|popen|spawn\w*|exec[lv]p?e?|__import__|getattr|setattr|apply)$/.test(name)) {
    return 'a function that can run code';
  }
  return undefined;
}

const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

const textDecoder = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

export interface PickleLimits {
  /** Largest container / memo the reader builds before calling the file corrupt. */
  maxItems?: number;
}

/**
 * Runs `data` through the pickle machine and returns the top-level value. Throws PickleError
 * (one-line message) on truncation, unknown opcodes, or a forbidden global.
 */
export function readPickle(data: Uint8Array, limits: PickleLimits = {}): PyValue {
  const maxItems = limits.maxItems ?? 50_000_000;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const stack: StackItem[] = [];
  const metastack: StackItem[][] = [];
  let current = stack;
  const memo = new Map<number, PyValue>();
  let pos = 0;

  const need = (n: number, what: string): void => {
    if (pos + n > data.byteLength) throw new PickleError(`pickle ends inside ${what} at byte ${pos} (truncated data.pkl?)`, 'pickle-truncated');
  };
  const u8 = (): number => {
    need(1, 'an argument');
    return data[pos++];
  };
  const u16 = (): number => {
    need(2, 'an argument');
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = (): number => {
    need(4, 'an argument');
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8, 'an argument');
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(data.byteLength)) throw new PickleError(`length ${v} at byte ${pos - 8} runs past the end of the pickle`, 'pickle-truncated');
    return Number(v);
  };
  const bytes = (n: number, what: string): Uint8Array => {
    need(n, what);
    const b = data.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const line = (): string => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) throw new PickleError(`pickle ends inside a text argument at byte ${pos}`, 'pickle-truncated');
    const s = latin1.decode(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const utf8 = (b: Uint8Array): string => {
    try {
      return textDecoder.decode(b);
    } catch {
      throw new PickleError(`string at byte ${pos - b.byteLength} is not valid UTF-8`, 'pickle-corrupt');
    }
  };
  const push = (v: PyValue): void => {
    current.push(v);
  };
  const pop = (): PyValue => {
    const v = current.pop();
    if (v === undefined || v === MARK) throw new PickleError(`stack underflow at byte ${pos - 1}`, 'pickle-corrupt');
    return v;
  };
  const top = (): PyValue => {
    const v = current[current.length - 1];
    if (v === undefined || v === MARK) throw new PickleError(`stack underflow at byte ${pos - 1}`, 'pickle-corrupt');
    return v;
  };
  const popMark = (): PyValue[] => {
    const items = current as PyValue[];
    const prev = metastack.pop();
    if (prev === undefined) throw new PickleError(`MARK missing at byte ${pos - 1}`, 'pickle-corrupt');
    current = prev;
    return items;
  };
  const global = (module: string, name: string): PyGlobal => {
    const why = forbiddenGlobal(module, name);
    if (why) throw new PickleError(`refers to ${module}.${name}, ${why}; nothing was executed`, 'pickle-global-forbidden');
    return new PyGlobal(module, name);
  };
  const memoGet = (i: number): PyValue => {
    if (!memo.has(i)) throw new PickleError(`memo key ${i} read before it was written (byte ${pos})`, 'pickle-corrupt');
    return memo.get(i) as PyValue;
  };
  const memoPut = (i: number): void => {
    if (memo.size >= maxItems) throw new PickleError('memo grows past the size limit', 'pickle-corrupt');
    memo.set(i, top());
  };
  const setItems = (target: PyValue, pairs: PyValue[]): void => {
    if (pairs.length % 2) throw new PickleError(`odd number of items for SETITEMS at byte ${pos - 1}`, 'pickle-corrupt');
    if (target instanceof PyDict) {
      for (let i = 0; i < pairs.length; i += 2) target.set(pairs[i], pairs[i + 1]);
      return;
    }
    const sink = target instanceof PyObject ? target.dictItems : undefined;
    if (!sink) throw new PickleError(`SETITEM on a non-dict value at byte ${pos - 1}`, 'pickle-corrupt');
    for (let i = 0; i < pairs.length; i += 2) {
      const key = pairs[i];
      // A later SETITEM of the same key replaces the value, as in a Python dict.
      const at = typeof key === 'string' || typeof key === 'number' ? sink.findIndex(([k]) => k === key) : -1;
      if (at >= 0) sink[at] = [key, pairs[i + 1]];
      else sink.push([key, pairs[i + 1]]);
    }
  };
  const appendItems = (target: PyValue, items: PyValue[]): void => {
    if (target instanceof PyList) target.items.push(...items);
    else if (target instanceof PyObject) target.listItems.push(...items);
    else throw new PickleError(`APPEND on a non-list value at byte ${pos - 1}`, 'pickle-corrupt');
  };
  const call = (callee: PyValue, args: PyValue, kwargs?: PyValue): PyValue => {
    // An OrderedDict() or dict() with no arguments is plain data; keep it a dict so SETITEMS fill it.
    if (callee instanceof PyGlobal && args instanceof PyTuple && args.items.length === 0 && kwargs === undefined) {
      const q = callee.qualified;
      if (q === 'collections.OrderedDict' || q === 'builtins.dict' || q === '__builtin__.dict') return new PyDict(callee);
    }
    return new PyObject(callee, args, kwargs);
  };

  for (;;) {
    if (pos >= data.byteLength) throw new PickleError(`pickle ends at byte ${pos} without a STOP opcode (truncated data.pkl?)`, 'pickle-truncated');
    const op = data[pos++];
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) throw new PickleError(`unsupported pickle protocol ${data[pos - 1]}`, 'pickle-opcode');
        break;
      case 0x95: // FRAME: a length hint only
        u64();
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        metastack.push(current);
        current = [];
        break;
      case 0x30: // POP
        if (current.length === 0) throw new PickleError(`POP on an empty stack at byte ${pos - 1}`, 'pickle-corrupt');
        current.pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4a: // BININT
        need(4, 'BININT');
        push(view.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x8a: // LONG1
      case 0x8b: {
        // LONG4
        const n = op === 0x8a ? u8() : u32();
        push(littleSigned(bytes(n, 'LONG')));
        break;
      }
      case 0x49: {
        // INT (text); "01"/"00" are protocol-0 booleans
        const s = line().trim();
        if (s === '01' || s === '00') push(s === '01');
        else push(parseIntText(s));
        break;
      }
      case 0x4c: // LONG (text)
        push(parseIntText(line().trim().replace(/L$/, '')));
        break;
      case 0x47: // BINFLOAT: big-endian double
        need(8, 'BINFLOAT');
        push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x46: // FLOAT (text)
        push(Number(line()));
        break;
      case 0x58: // BINUNICODE
        push(utf8(bytes(u32(), 'BINUNICODE')));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(utf8(bytes(u8(), 'SHORT_BINUNICODE')));
        break;
      case 0x8d: // BINUNICODE8
        push(utf8(bytes(u64(), 'BINUNICODE8')));
        break;
      case 0x56: // UNICODE (raw-unicode-escape text); enough for the ASCII names seen in practice
        push(line());
        break;
      case 0x54: // BINSTRING (py2 str): read as latin-1 text
        push(latin1.decode(bytes(u32(), 'BINSTRING')));
        break;
      case 0x55: // SHORT_BINSTRING
        push(latin1.decode(bytes(u8(), 'SHORT_BINSTRING')));
        break;
      case 0x53: {
        // STRING (quoted repr)
        const s = line();
        push(s.length >= 2 ? s.slice(1, -1) : s);
        break;
      }
      case 0x42: // BINBYTES
        push(bytes(u32(), 'BINBYTES').slice());
        break;
      case 0x43: // SHORT_BINBYTES
        push(bytes(u8(), 'SHORT_BINBYTES').slice());
        break;
      case 0x8e: // BINBYTES8
        push(bytes(u64(), 'BINBYTES8').slice());
        break;
      case 0x96: // BYTEARRAY8
        push(bytes(u64(), 'BYTEARRAY8').slice());
        break;
      case 0x29: // EMPTY_TUPLE
        push(new PyTuple([]));
        break;
      case 0x85: // TUPLE1
        push(new PyTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        push(new PyTuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        push(new PyTuple([pop(), b, c]));
        break;
      }
      case 0x74: // TUPLE
        push(new PyTuple(popMark()));
        break;
      case 0x5d: // EMPTY_LIST
        push(new PyList([]));
        break;
      case 0x6c: // LIST
        push(new PyList(popMark()));
        break;
      case 0x7d: // EMPTY_DICT
        push(new PyDict());
        break;
      case 0x64: {
        // DICT
        const d = new PyDict();
        setItems(d, popMark());
        push(d);
        break;
      }
      case 0x8f: // EMPTY_SET
        push(new PySet([], false));
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof PySet)) throw new PickleError(`ADDITEMS on a non-set at byte ${pos - 1}`, 'pickle-corrupt');
        s.items.push(...items);
        break;
      }
      case 0x91: // FROZENSET
        push(new PySet(popMark(), true));
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        push(global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new PickleError(`STACK_GLOBAL needs two strings at byte ${pos - 1}`, 'pickle-corrupt');
        push(global(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        push(call(pop(), args));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        push(call(pop(), args));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        push(call(pop(), args, kwargs));
        break;
      }
      case 0x69: {
        // INST "module\nname\n" with MARKed args
        const module = line();
        const g = global(module, line());
        push(call(g, new PyTuple(popMark())));
        break;
      }
      case 0x6f: {
        // OBJ: MARK callee args...
        const items = popMark();
        if (items.length === 0) throw new PickleError(`OBJ without a class at byte ${pos - 1}`, 'pickle-corrupt');
        push(call(items[0], new PyTuple(items.slice(1))));
        break;
      }
      case 0x62: {
        // BUILD: the state is recorded, never applied by calling __setstate__
        const state = pop();
        const target = top();
        if (target instanceof PyObject || target instanceof PyDict) target.state = state;
        else throw new PickleError(`BUILD on a plain value at byte ${pos - 1}`, 'pickle-corrupt');
        break;
      }
      case 0x51: // BINPERSID
        push(new PyPersistent(pop()));
        break;
      case 0x50: // PERSID
        push(new PyPersistent(line()));
        break;
      case 0x71: // BINPUT
        memoPut(u8());
        break;
      case 0x72: // LONG_BINPUT
        memoPut(u32());
        break;
      case 0x70: // PUT
        memoPut(Number(line()));
        break;
      case 0x94: // MEMOIZE
        memoPut(memo.size);
        break;
      case 0x68: // BINGET
        push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET
        push(memoGet(u32()));
        break;
      case 0x67: // GET
        push(memoGet(Number(line())));
        break;
      case 0x82:
      case 0x83:
      case 0x84: // EXT1/2/4: look-ups in the copyreg registry, which would import
        throw new PickleError(`uses the copyreg extension registry (opcode 0x${op.toString(16)}), which is not supported`, 'pickle-opcode');
      case 0x97:
      case 0x98: // NEXT_BUFFER, READONLY_BUFFER: out-of-band data torch never writes
        throw new PickleError(`uses out-of-band buffers (opcode 0x${op.toString(16)}), which are not supported`, 'pickle-opcode');
      default:
        throw new PickleError(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${pos - 1}`, 'pickle-opcode');
    }
    if (current.length > maxItems) throw new PickleError('stack grows past the size limit', 'pickle-corrupt');
  }
}

/** Two's-complement little-endian integer (LONG1/LONG4); a number when it is a safe integer. */
function littleSigned(b: Uint8Array): number | bigint {
  if (b.byteLength === 0) return 0;
  let v = 0n;
  for (let i = b.byteLength - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  if (b[b.byteLength - 1] & 0x80) v -= 1n << BigInt(8 * b.byteLength);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function parseIntText(s: string): number | bigint {
  if (!/^[+-]?\d+$/.test(s)) throw new PickleError(`bad integer text ${JSON.stringify(s.slice(0, 40))}`, 'pickle-corrupt');
  const v = BigInt(s);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}
