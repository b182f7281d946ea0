/** Flags shared by every command that reads a checkpoint folder, and their parsing. */
import { Option, type Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { defaultNote } from '../run/defaults.ts';

export function intArg(name: string, min = -Infinity, max = Infinity) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError(`${name} must be an integer`);
    const n = Number(value);
    // Beyond 2^53 Number() rounds, so 99999999999999999999 would pass as 1e20 and fail deep inside.
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer between ${min} and ${max}`);
    return n;
  };
}

/** `--modes 10` or a sweep `--modes 2,5,10,20` (the first is the primary model). */
export function modesArg(value: string): number[] {
  const list = value.split(',').map((v) => v.trim());
  if (!list.length || !list.every((v) => /^\d+$/.test(v))) throw new InvalidArgumentError('--modes takes an integer or a comma list of integers');
  const nums = list.map(Number);
  if (nums.some((n) => n < 1 || n > 65535)) throw new InvalidArgumentError('--modes must be between 1 and 65535');
  if (new Set(nums).size !== nums.length) throw new InvalidArgumentError('--modes lists a value twice');
  return nums;
}

export function floatArg(name: string, min = -Infinity, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a number in [${min}, ${max}]`);
    return n;
  };
}

const BASELINE_KINDS = ['avg-last-k', 'ema', 'pca', 'dmd'] as const;

/** `--baselines avg-last-k,ema,pca,dmd` (or `all`). */
export function baselinesArg(value: string): (typeof BASELINE_KINDS)[number][] {
  if (value.trim() === 'all') return [...BASELINE_KINDS];
  const list = value.split(',').map((v) => v.trim());
  for (const v of list) if (!(BASELINE_KINDS as readonly string[]).includes(v)) throw new InvalidArgumentError(`unknown baseline ${v} (choose from ${BASELINE_KINDS.join(', ')}, or all)`);
  return [...new Set(list)] as (typeof BASELINE_KINDS)[number][];
}

/**
 * The largest K: the K × K correlation and distance matrices are single typed arrays, and
 * K² must stay below 2^30 elements (docs/user-guide.md).
 */
export const MAX_SAMPLES = 32768;

/** --samples, --seed, --samples-from: how the K sampled parameters are chosen. */
export function addSamplingOptions(cmd: Command): Command {
  return cmd
    .option('-k, --samples <K>', `number of sampled parameters K ${defaultNote('samples')}`, intArg('--samples', 2, MAX_SAMPLES))
    .option('--seed <n>', `seed for sampling ${defaultNote('seed')}`, intArg('--seed', 0, 2 ** 32 - 1))
    .option('--samples-from <file>', 'use these samples (JSON [tensor, element] pairs, e.g. a samples.json) instead of drawing them');
}

/** --workers and the hidden --chunk-size. */
export function addWorkerOptions(cmd: Command): Command {
  return cmd
    .option('--workers <n>', 'worker threads (default: one per core)', intArg('--workers', 1, 256))
    .addOption(new Option('--chunk-size <n>', 'parameters per chunk').argParser(intArg('--chunk-size', 1)).hideHelp());
}

/** --force, --json, --html, --quiet: how a run's outputs are written and shown. */
export function addOutputOptions(cmd: Command): Command {
  return cmd
    .option('--force', 'replace a non-empty output folder')
    .option('--json', 'print report.json instead of the summary')
    .option('--html <file>', 'also write the self-contained HTML report')
    .option('-q, --quiet', 'no progress or notes on stderr');
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Adds --format, --include/--exclude, --from/--to/--every, --order-by, --tensor-table, --exclude-tensors. */
export function addSelectionOptions(cmd: Command, formatFlag = '--format'): Command {
  return cmd
    .addOption(new Option(`${formatFlag} <format>`, 'checkpoint format of the input (default: detected)').choices(['safetensors', 'npy', 'npz', 'tfjs', 'torch', 'keras-h5']))
    .option('--include <glob>', 'only folder entries matching this glob (repeatable)', collect)
    .option('--exclude <glob>', 'leave out folder entries matching this glob (repeatable)', collect)
    .option('--from <step>', 'first step to use (as `cmd inspect` shows it)', intArg('--from'))
    .option('--to <step>', 'last step to use', intArg('--to'))
    .option('--every <k>', 'use every k-th selected checkpoint', intArg('--every', 1))
    .option('--step-pattern <regex>', "where the step is in checkpoint names: the regex's first capture group (e.g. 'step(\\d+)')")
    .addOption(new Option('--order-by <key>', 'order checkpoints by the step in their names or in their metadata').choices(['name', 'metadata'] as const).default('name'))
    .option('--tensor-table <file>', 'JSON list of [name, shape] splitting flat .npy checkpoints into tensors')
    .option('--state-key <key>', 'PyTorch checkpoints: dotted path of the dict holding the model tensors (e.g. ema)')
    .option('--exclude-tensors <glob>', 'carry matching tensors through unmodelled (repeatable)', collect);
}

export { loadOptionsFrom, type SelectionFlags } from '../run/options.ts';
