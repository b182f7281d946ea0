/** Reading test outputs apart: a safetensors file's header, metadata and data section. */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** 8 + N: the length prefix and JSON header of a safetensors file. */
export function safetensorsHeaderBytes(file: string): number {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(8);
    fs.readSync(fd, b, 0, 8, 0);
    return 8 + Number(b.readBigUInt64LE(0));
  } finally {
    fs.closeSync(fd);
  }
}

/** A safetensors file as its tensor table, metadata and the sha256 of its data section. */
export function modelParts(file: string): { tensors: Record<string, unknown>; metadata: Record<string, string>; dataSha256: string } {
  const bytes = fs.readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const { __metadata__: metadata, ...tensors } = header;
  return { tensors, metadata: (metadata ?? {}) as Record<string, string>, dataSha256: createHash('sha256').update(bytes.subarray(8 + n)).digest('hex') };
}

/** Every file under `dir` as [relative path, latin1 text] (to search for leaked strings). */
export function outputsOf(dir: string): [string, string][] {
  const out: [string, string][] = [];
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const full = path.join(e.parentPath, e.name);
    out.push([path.relative(dir, full), fs.readFileSync(full).toString('latin1')]);
  }
  return out;
}
