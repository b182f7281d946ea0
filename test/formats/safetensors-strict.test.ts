/**
 * Issue 12, point 9: the reference safetensors reader parses the header with serde — shapes and
 * offsets are integers (`32.0` is refused) and a key given twice is an error. JSON.parse forgives
 * both; the reader must not. Files are a real fixture with its header text edited.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.ts';
import { parseSafetensorsHeader } from '../../src/formats/safetensors.ts';
import { strictJsonIssues } from '../../src/formats/json-strict.ts';
import { fixture } from '../helpers/tmp.ts';

const dir = fixture('resnet20-bn-safetensors');
const file = path.join(dir, readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort()[0]);
const bytes = readFileSync(file);
const n = Number(bytes.readBigUInt64LE(0));
const headerText = bytes.subarray(8, 8 + n).toString('utf8');
const size = bytes.length;

/** The header text edited by `edit` (the data that follows it is unchanged). */
function edited(edit: (t: string) => string): Uint8Array {
  return Buffer.from(edit(headerText));
}

function ruleOf(header: Uint8Array): string {
  try {
    // The file the edited header would make: same data bytes after the new header.
    parseSafetensorsHeader(file, header, size - n + header.byteLength);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    expect((e as Error).message.split('\n')).toHaveLength(1);
    return (e as InputError).rule;
  }
  return 'accepted';
}

describe('safetensors header: what serde refuses', () => {
  it('the unedited header is accepted', () => {
    expect(ruleOf(edited((t) => t))).toBe('accepted');
  });

  it('a shape dimension written 32.0 or 3.2e1 is refused', () => {
    const m = /"shape":\[(\d+)/.exec(headerText)!;
    const asFloat = edited((t) => t.replace(m[0], `"shape":[${m[1]}.0`));
    expect(ruleOf(asFloat)).toBe('shape-invalid');
    const exp = edited((t) => t.replace(m[0], `"shape":[${m[1]}e0`));
    expect(ruleOf(exp)).toBe('shape-invalid');
  });

  it('data_offsets written as floats are refused', () => {
    const m = /"data_offsets":\[(\d+),/.exec(headerText)!;
    expect(ruleOf(edited((t) => t.replace(m[0], `"data_offsets":[${m[1]}.0,`)))).toBe('offsets-invalid');
  });

  it('a tensor given twice is refused, as is a field given twice', () => {
    const first = /"([^"]+)":(\{[^}]*\})/.exec(headerText.replace(/^\{"__metadata__":\{[^}]*\},/, '{'))!;
    const twice = edited((t) => t.trimEnd().replace(/\}$/, `,"${first[1]}":${first[2]}}`));
    expect(ruleOf(twice)).toBe('duplicate-key');
    const field = edited((t) => t.replace(`"${first[1]}":{"dtype":`, `"${first[1]}":{"dtype":"F32","dtype":`));
    expect(ruleOf(field)).toBe('duplicate-key');
  });

  it('strictJsonIssues reports paths and leaves strings alone', () => {
    const r = strictJsonIssues('{"a":{"shape":[1.5,2]},"b":"3.0 \\" {","c":{"x":1,"x":2}}');
    expect(r.nonIntegerNumbers).toEqual([{ path: ['a', 'shape'], token: '1.5' }]);
    expect(r.duplicateKey).toEqual({ path: ['c'], key: 'x' });
    expect(strictJsonIssues('{"a":[{"k":1},{"k":2}]}').duplicateKey).toBeUndefined();
  });
});
