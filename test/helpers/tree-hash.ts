/**
 * Fingerprints of folder trees, for the tests that prove a command left files alone
 * (inputs are never modified; files a command does not own stay byte-identical).
 */
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** sha256 of every file under `dir`, by relative path (contents only). */
export function fileHashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = path.join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out[path.relative(dir, p)] = sha256(readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

/**
 * Every entry under `root`, one line each: path, mode, mtime, size and a hash of the bytes (or
 * the link target). Any change to bytes, permissions, times or the listing changes it.
 */
export function treeDigest(root: string): string {
  const lines: string[] = [];
  const walk = (p: string) => {
    const st = lstatSync(p);
    const rel = path.relative(root, p) || '.';
    let body = '';
    if (st.isSymbolicLink()) body = `-> ${readlinkSync(p)}`;
    else if (st.isFile()) body = sha256(readFileSync(p));
    lines.push(`${rel} ${st.mode.toString(8)} ${st.mtimeMs} ${st.size} ${body}`);
    if (st.isDirectory()) for (const n of readdirSync(p).sort()) walk(path.join(p, n));
  };
  walk(root);
  return lines.join('\n');
}
