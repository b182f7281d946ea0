/**
 * Global setup of the cluster project (`npm run test:cluster`, docs/architecture.md "Tests").
 * - Does everything the e2e setup does (builds dist/ and the CLI bundle, guards the work tree and the fixtures).
 * - Brings a private single-node Slurm cluster up once (scripts/slurm/up.sh, under a temp folder)
 *   on two ports free at that moment (so two runs on one machine, e.g. two work trees, never meet on
 *   up.sh's fixed defaults) and hands its SLURM_CONF to the tests; tears it down (scripts/slurm/down.sh: jobs cancelled,
 *   daemons stopped by PID) after the run, also when tests failed or the run is interrupted.
 * Without Slurm installed the tests skip locally and fail under CI=true (haveTools('slurm')).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { haveTools } from '../helpers/optional-tools.ts';
import buildDist from './build-dist.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The cluster's slurm.conf, or '' when Slurm is not installed (tests skip). */
    slurmConf: string;
  }
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Two TCP ports nothing listens on now (held open together so they differ). */
async function freePorts(): Promise<[number, number]> {
  const open = () =>
    new Promise<net.Server>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, () => resolve(s));
    });
  const servers = [await open(), await open()];
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return [ports[0], ports[1]];
}

export default async function setup(project: TestProject): Promise<() => void> {
  const checkRepo = await buildDist();
  if (!haveTools('slurm')) {
    project.provide('slurmConf', '');
    return checkRepo;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cmd-slurm-'));
  let down = false;
  const stop = () => {
    if (down) return;
    down = true;
    spawnSync(path.join(root, 'scripts/slurm/down.sh'), [dir], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stop);
  // CMD_SLURM_PORTS given by the user wins (scripts/slurm/up.sh reads it).
  const ports = process.env.CMD_SLURM_PORTS ?? (await freePorts()).join(',');
  const up = spawnSync(path.join(root, 'scripts/slurm/up.sh'), [dir], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, CMD_SLURM_PORTS: ports } });
  if (up.status !== 0) {
    stop();
    throw new Error(`scripts/slurm/up.sh failed (exit ${up.status}):\n${up.stderr}`);
  }
  project.provide('slurmConf', path.join(dir, 'slurm.conf'));
  return () => {
    stop();
    checkRepo();
  };
}
