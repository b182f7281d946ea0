/**
 * `run-info.json`: what is true of a run but not of its results — wall-clock times, worker
 * counts, bytes read, the Node version, and the decomposition's input key with checkpoint
 * mtimes. Kept apart from report.json so that the report is byte-identical across reruns.
 * One entry per command that wrote into the folder (`analyze`, `reconstruct`), so a later
 * `reconstruct` does not erase the `analyze` timing that `cmd report --max-slowdown` compares.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InputError } from '../errors.ts';
import { writeFileAtomic } from '../output/atomic.ts';
import { RUN_INFO_FILE } from '../output/file-names.ts';
import type { RunInfo } from './run-info-schema.ts';
import type { DecompositionKey } from './provenance.ts';

export type CommandName = 'analyze' | 'reconstruct' | 'watch';

export type { RunInfo } from './run-info-schema.ts';

/**
 * The run-info.json of `dir`: undefined when there is none; an older single-entry file (top-level
 * `seconds`) reads as analyze's entry; a file that is not valid is an InputError naming it.
 */
export async function readRunInfo(dir: string): Promise<RunInfo | undefined> {
  const file = path.join(dir, RUN_INFO_FILE);
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new InputError(file, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'unreadable');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InputError(file, `is not JSON (${(e as Error).message})`, 'bad-json');
  }
  if (json && typeof json === 'object' && typeof (json as { seconds?: unknown }).seconds === 'number' && !('analyze' in json)) json = { analyze: json };
  // The schema (zod) loads only when a run-info.json is read, off every command's start-up.
  const { RunInfoSchema } = await import('./run-info-schema.ts');
  const parsed = RunInfoSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(file, `is not a cmd run-info file: ${issue.message} at ${issue.path.join('.') || '(root)'}`, 'bad-run-info');
  }
  return parsed.data;
}

/** The decomposition's recorded key, or undefined (none, or an unreadable run-info.json). */
export async function recordedKey(dir: string): Promise<DecompositionKey | undefined> {
  const info = await readRunInfo(dir).catch(() => undefined);
  return info?.decomposition?.key as DecompositionKey | undefined;
}

/** Facts about the process that ran a command. */
export function processFacts(): Record<string, unknown> {
  return { peakRssBytes: process.resourceUsage().maxRSS * 1024, node: process.version };
}

export async function writeRunInfo(dir: string, info: RunInfo): Promise<void> {
  await writeFileAtomic(path.join(dir, RUN_INFO_FILE), `${JSON.stringify(info, null, 2)}\n`);
}
