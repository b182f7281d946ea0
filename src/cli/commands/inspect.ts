import { loadCheckpointSet } from '../../checkpoints/checkpoint-set.ts';
import { describeCheckpointSet, type FolderDescription } from '../../checkpoints/describe.ts';
import { loadOptionsFrom, type SelectionFlags } from '../options.ts';
import { chalkFor, formatBytes, formatTable, writeOut } from '../terminal.ts';
import { interruptSignal } from '../signals.ts';
import { CancelledError } from '../../errors.ts';
import { checkpointInput } from '../../remote/inputs.ts';
import type { RemoteFlags } from '../../run/options.ts';

export interface InspectFlags extends SelectionFlags, RemoteFlags {
  json?: boolean;
}

export async function inspectCommand(dir: string | undefined, flags: InspectFlags): Promise<void> {
  const set = await loadCheckpointSet(checkpointInput(dir, flags), { ...(await loadOptionsFrom(flags)), minCheckpoints: 1 });
  // Ctrl-C while the headers were read: no listing, exit 130 like every other command.
  if (interruptSignal.aborted) throw new CancelledError();
  const d = describeCheckpointSet(set);
  writeOut(flags.json ? JSON.stringify(d, null, 2) : renderDescription(d));
}

export function renderDescription(d: FolderDescription): string {
  const c = chalkFor(process.stdout);
  const lines: string[] = [];
  lines.push(c.bold(`${d.dir}`) + `  (${d.format}, ${d.checkpoints.length} checkpoints, ${formatBytes(d.totalBytes)})`);
  lines.push('');
  lines.push(formatTable([['index', 'step', 'name', 'size'], ...d.checkpoints.map((k) => [String(k.index), String(k.step), k.name, formatBytes(k.bytes)])], ['r', 'r', 'l', 'r']));
  lines.push('');
  lines.push(
    formatTable(
      [['tensor', 'shape', 'dtype', 'elements', 'role'], ...d.tensors.map((t) => [t.name, `[${t.shape.join(', ')}]`, t.dtype, String(t.elements), t.role === 'modelled' ? 'modelled' : `carried (${t.reason})`])],
      ['l', 'l', 'l', 'r', 'l'],
    ),
  );
  lines.push('');
  lines.push(`modelled parameters: ${d.modelledParameters.toLocaleString('en-US')} (${formatBytes(d.modelledBytesPerCheckpoint)} per checkpoint)`);
  if (d.ignored.length) {
    lines.push('');
    lines.push('ignored:');
    for (const i of d.ignored) lines.push(`  ${i.name}  (${i.reason})`);
  }
  for (const n of d.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}
