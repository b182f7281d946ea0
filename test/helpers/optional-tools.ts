/**
 * Optional external tools some tests need (Debian's python3-torch / python3-h5py / numpy,
 * Chromium, Slurm). Locally a missing tool skips those tests with a message; in CI (CI=true), where
 * `.ci/run` installs them, a missing tool fails the test file instead of hiding it.
 */
import { spawnSync } from 'node:child_process';

/** Debian's interpreter: the one python3-torch / python3-h5py / python3-numpy install into. */
export const PYTHON = process.env.CMD_TEST_PYTHON ?? '/usr/bin/python3';

const probes = {
  'python3-numpy': [PYTHON, ['-c', 'import numpy']],
  'python3-torch': [PYTHON, ['-c', 'import torch']],
  'python3-h5py': [PYTHON, ['-c', 'import h5py']],
  chromium: ['chromium', ['--version']],
  // The daemons and the client scripts/slurm/up.sh needs (a private single-node cluster).
  slurm: ['sh', ['-c', 'command -v munged && command -v slurmctld && command -v slurmd && command -v sbatch']],
} as const;

/** Debian packages that provide a tool, where its name is not one. */
const packages: Partial<Record<OptionalTool, string>> = { slurm: 'slurmctld slurmd slurm-client munge' };

export type OptionalTool = keyof typeof probes;

const cache = new Map<OptionalTool, boolean>();

function available(tool: OptionalTool): boolean {
  let ok = cache.get(tool);
  if (ok === undefined) {
    const [cmd, args] = probes[tool];
    const r = spawnSync(cmd, [...args], { encoding: 'utf8', timeout: 60_000 });
    ok = r.status === 0;
    cache.set(tool, ok);
  }
  return ok;
}

/**
 * True when every tool is there. When one is missing: throws under CI, otherwise prints why
 * and returns false, for `describe.skipIf(!haveTools(...))`.
 */
export function haveTools(...tools: OptionalTool[]): boolean {
  const missing = tools.filter((t) => !available(t));
  if (missing.length === 0) return true;
  const msg = `missing ${missing.join(', ')} (apt-get install -y ${missing.map((t) => packages[t] ?? t).join(' ')})`;
  if (process.env.CI) throw new Error(`${msg}: required in CI`);
  process.stderr.write(`skipping: ${msg}\n`);
  return false;
}
