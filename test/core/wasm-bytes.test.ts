/**
 * The committed WebAssembly bytes (src/<area>/wasm/<name>-bytes.ts, what the runtime loads) are
 * the assembly of the committed .wat sources: an edited .wat without `npm run build:wasm` fails
 * here instead of silently running the old bytes (docs/architecture.md, "WebAssembly kernels").
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import initWabt from 'wabt';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/tmp.ts';

const src = path.join(repoRoot, 'src');
/** Every .wat under src/<area>/wasm/. */
const watFiles = readdirSync(src, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .flatMap((d) => {
    const dir = path.join(src, d.name, 'wasm');
    try {
      return readdirSync(dir).filter((f) => f.endsWith('.wat')).map((f) => path.join(dir, f));
    } catch {
      return [];
    }
  });

/** Assembles a .wat the way scripts/build-wasm.mjs does (SIMD on, no debug names). */
async function assemble(file: string): Promise<Uint8Array> {
  const wabt = await initWabt();
  const mod = wabt.parseWat(path.basename(file), readFileSync(file, 'utf8'), { simd: true });
  try {
    mod.validate();
    return mod.toBinary({ log: false, write_debug_names: false }).buffer;
  } finally {
    mod.destroy();
  }
}

describe('WebAssembly kernels: committed bytes match their .wat', () => {
  it('finds the four kernels', () => {
    expect(watFiles.map((f) => path.basename(f)).sort()).toEqual(['baselines-kernel.wat', 'distance-kernel.wat', 'fit-kernel.wat', 'online-kernel.wat']);
  });

  for (const wat of watFiles) {
    it(`${path.relative(repoRoot, wat)} assembles to the bytes in its -bytes.ts`, async () => {
      const bytesFile = wat.replace(/\.wat$/, '-bytes.ts');
      const exported = Object.values(await import(pathToFileURL(bytesFile).href)) as unknown[];
      expect(exported, `${bytesFile} exports one base64 string`).toHaveLength(1);
      const committed = Buffer.from(exported[0] as string, 'base64');
      const built = Buffer.from(await assemble(wat));
      // Compared as base64 text so a mismatch prints something short; the message says the fix.
      expect(committed.equals(built), `${path.relative(repoRoot, bytesFile)} is stale: run npm run build:wasm`).toBe(true);
      expect(committed.length).toBeGreaterThan(8);
    });
  }

  it('a changed .wat does not match the committed bytes (the check can fail)', async () => {
    const wat = watFiles.find((f) => f.endsWith('distance-kernel.wat'))!;
    const text = readFileSync(wat, 'utf8');
    const committed = Buffer.from(Object.values(await import(pathToFileURL(wat.replace(/\.wat$/, '-bytes.ts')).href))[0] as string, 'base64');
    // One more (unused) exported function is a small, valid edit.
    const edited = text.replace(/\)\s*$/, '\n  (func (export "cmd_test_probe") (result i32) i32.const 7))\n');
    expect(edited).not.toBe(text);
    const wabt = await initWabt();
    const mod = wabt.parseWat('edited.wat', edited, { simd: true });
    mod.validate();
    const built = Buffer.from(mod.toBinary({ log: false, write_debug_names: false }).buffer);
    mod.destroy();
    expect(committed.equals(built)).toBe(false);
  });
});
