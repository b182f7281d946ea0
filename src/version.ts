/** The package's name and version, read once from package.json. */
import { readFileSync } from 'node:fs';

const NAME = 'correlation-mode-decomposition';

/**
 * package.json is one folder up from src/ and from tsc's dist/, two from the CLI bundle
 * (dist/bundle/, scripts/bundle-cli.mjs).
 */
function readPackage(): { name: string; version: string } {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === NAME && typeof pkg.version === 'string') return { name: NAME, version: pkg.version };
    } catch {
      // not this folder
    }
  }
  throw new Error(`${NAME}: package.json not found next to ${import.meta.url}`);
}

const pkg = readPackage();
export const TOOL_NAME: string = pkg.name;
export const TOOL_VERSION: string = pkg.version;
