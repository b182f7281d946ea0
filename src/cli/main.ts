/**
 * The command-line entry: declares commands and flags, and is the one place that turns
 * errors into exit codes (0 ok, 1 a gate failed, 2 trouble, 130 interrupted).
 * Command modules are imported lazily so `cmd inspect` never pays for tfjs.
 */
import { Command, CommanderError, Option } from 'commander';
import { redactUrls } from '../remote/url.ts';
import { CancelledError, CmdError, RuntimeError, UsageError } from '../errors.ts';
import { diskErrorText, reviveWorkerError } from '../io/disk-errors.ts';
import { addOutputOptions, addSamplingOptions, addSelectionOptions, addWorkerOptions, baselinesArg, floatArg, intArg, modesArg } from './options.ts';
import { setQuiet } from './terminal.ts';
import { setScratchNote } from '../formats/scratch.ts';
import { setCleanupNote } from '../output/run-lock.ts';
import { interruptSignal, installSignalHandlers } from './signals.ts';
import type { InspectFlags } from './commands/inspect.ts';
import type { AnalyzeFlags } from './commands/analyze.ts';
import type { ReconstructFlags } from './commands/reconstruct.ts';
import type { OutputFormat } from '../reconstruct/write-checkpoint.ts';
import { DEFAULTS, defaultNote } from '../run/defaults.ts';
import { TOOL_VERSION } from '../version.ts';


const exitCodesHelp = `
Exit codes: 0 success, 1 a gate failed (cmd report thresholds), 2 usage error, bad input or runtime failure, 130 interrupted.`;

function buildProgram() {
  const program = new Command('cmd')
    .description('Correlation Mode Decomposition (CMD) for folders of training checkpoints')
    .version(TOOL_VERSION)
    .addHelpText('after', exitCodesHelp)
    .exitOverride()
    .configureOutput({
      writeErr: (s) => process.stderr.write(s),
      writeOut: (s) => process.stdout.write(s),
      // One line per usage error, like every other error: `cmd: <problem> (run with --help for usage)`.
      outputError: (s, write) => write(`cmd: ${s.replace(/^error: /, '').replace(/\s+/g, ' ').trim()} (run with --help for usage)\n`),
    });

  addSelectionOptions(
    program
      .command('inspect')
      .description('list the checkpoints, tensors and ignored files of a folder')
      .argument('[dir]', 'checkpoint folder, or hf://org/model with --revisions')
      .option('--urls <file>', 'read the checkpoints over HTTP: a file of http(s) URLs, one per line, instead of a folder')
      .option('--revisions <list>', 'with hf://org/model: the revisions (branches or tags) holding the checkpoints, comma-separated')
      .option('--json', 'print one JSON document'),
  ).action(async (dir: string | undefined, flags: InspectFlags) => {
    const { inspectCommand } = await import('./commands/inspect.ts');
    await inspectCommand(dir, flags);
  });

  const analyze = addSelectionOptions(
    program
      .command('analyze')
      .description('run post-hoc CMD on a checkpoint folder and write the model and report')
      .argument('[dir]', 'checkpoint folder, or hf://org/model with --revisions (not with --plan)')
      .option('--urls <file>', 'read the checkpoints over HTTP: a file of http(s) URLs, one per line, instead of a folder')
      .option('--revisions <list>', 'with hf://org/model: the revisions (branches or tags) holding the checkpoints, comma-separated')
      .option('-o, --out <dir>', 'output folder', DEFAULTS.out)
      .option('-m, --modes <M>', 'number of modes M (at most; tied clusters can give fewer); a list 2,5,10 sweeps M in one pass, the first is the main model', modesArg, [DEFAULTS.modes])
      .option('--baselines <list>', 'baselines beside CMD in the same pass: avg-last-k,ema,pca,dmd', baselinesArg)
      .option('--avg-last <k>', 'checkpoints in the avg-last-k baseline', intArg('--avg-last', 1), DEFAULTS.avgLast)
      .option('--ema-beta <beta>', 'decay of the ema baseline, in [0, 1)', floatArg('--ema-beta', 0, 0.999999), DEFAULTS.emaBeta)
      .option('--online', 'online CMD: modes and references from the warm-up checkpoints 0..F, then a, b updated checkpoint by checkpoint')
      .option('--warmup <F>', `online warm-up: checkpoints 0..F ${defaultNote('warmup')}, capped at T-1`, intArg('--warmup', 2))
      .option('--embed-window <L>', 'with --online: simulate embedded CMD (no retraining); an embedding step every L checkpoint positions (default 10)', intArg('--embed-window', 1))
      .option('--embed-perc <P>', 'with --online: percent of the parameters embedded per step (default 10)', floatArg('--embed-perc', 1e-9, 100))
      .option('--embed-relative', 'with --online: P% of the not-yet-embedded parameters instead of all N')
      .hook('preAction', async (c) => {
        const o = c.opts();
        // Splitting is refused first: with --plan/--shard no method flag is taken at all.
        if (o.plan !== undefined || o.shard !== undefined || o.planOnly || o.local) (await import('../run/scale-out.ts')).refuseEmbedSplit(o, '--plan-only, --plan/--shard, --local');
        (await import('../online/embedded-flags.ts')).checkEmbedFlags(o);
      })
      .option('--skip-nonfinite', 'leave parameters with a NaN or infinite value out of the model (carried as-is) instead of failing'),
  );
  addOutputOptions(addWorkerOptions(addSamplingOptions(analyze)))
  .option('--plan-only', 'scale-out: write <out>/plan/ (pass 1 and the clustering) for --shards n tasks, and stop')
  .option('--shards <n>', 'scale-out: number of shard tasks (with --plan-only or --local)', intArg('--shards', 1, 100000))
  .option('--plan <out>', 'scale-out: run one shard task of the plan in <out> (with --shard)')
  .option('--shard <i/n|auto>', 'scale-out: which shard; auto reads SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX')
  .option('--local', 'scale-out: plan, run the --shards n tasks as local processes, merge')
  .action(async (dir: string | undefined, flags: Omit<AnalyzeFlags, 'modes'> & { modes: number[] } & import('./commands/scale-out.ts').ScaleOutFlags, command: Command) => {
    const opts = { ...flags, modes: flags.modes[0], sweepModes: flags.modes.slice(1) };
    const scaleOut = flags.plan !== undefined || flags.shard !== undefined || flags.planOnly || flags.local || flags.shards !== undefined;
    if (!scaleOut) {
      const { analyzeCommand } = await import('./commands/analyze.ts');
      await analyzeCommand(dir, opts);
      return;
    }
    // Remote inputs are read by one process for now (docs/scale-out.md, "Checkpoints over HTTP").
    if (flags.urls !== undefined || flags.revisions !== undefined || dir?.startsWith('hf://')) throw new UsageError('--urls and hf:// inputs cannot be split over shards yet: run cmd analyze on them in one process');
    const so = await import('./commands/scale-out.ts');
    const given = Object.keys(command.opts()).filter((k) => command.getOptionValueSource(k) === 'cli');
    so.checkScaleOutFlags(dir, opts, given);
    if (flags.plan !== undefined) await so.shardCommand(opts);
    else if (flags.planOnly) await so.planOnlyCommand(dir!, opts);
    else await so.localCommand(dir!, opts);
  });

  program
    .command('merge')
    .description('scale-out: merge the shards of a planned run in <out> into the model and report')
    .argument('<out>', 'output folder holding plan/ and shards/')
    .option('--json', 'print report.json instead of the summary')
    .option('-q, --quiet', 'no progress or notes on stderr')
    .action(async (out: string, flags: { json?: boolean; quiet?: boolean }) => {
      const { mergeCommand } = await import('./commands/scale-out.ts');
      await mergeCommand(out, flags);
    });

  const reconstruct = addSelectionOptions(
    program
      .command('reconstruct')
      .description('write CMD-reconstructed checkpoints (and the last-k average), optionally evaluated')
      .argument('[dir]', 'checkpoint folder (default: the one recorded in <out>/cmd-model.safetensors)')
      .option('-o, --out <dir>', 'output folder', DEFAULTS.out)
      .option('--model <file>', 'use this cmd-model.safetensors instead of running the decomposition')
      .option('-m, --modes <M>', `number of modes M (when the decomposition runs) ${defaultNote('modes')}, or the recorded one of the model in <out>`, intArg('--modes', 1, 65535))
      .option('--online', 'write the online CMD model at each chosen checkpoint (a, b fitted on checkpoints up to it)')
      .option('--warmup <F>', `online warm-up: checkpoints 0..F ${defaultNote('warmup')}, capped at T-1`, intArg('--warmup', 2))
      .option('--checkpoints <which>', 'last, all, or a comma list of steps', DEFAULTS.checkpoints)
      .addOption(new Option('--format <format>', 'format of the written checkpoints').choices(['same', 'safetensors', 'npy', 'npz', 'tfjs']).default('same'))
      .option('--avg-last <k>', 'also write the uniform average of the last k checkpoints (0: none)', intArg('--avg-last', 0), DEFAULTS.avgLast)
      .option('--eval-data <dir>', 'evaluate tfjs LayersModels in-process on x.npy / y.npy in this folder')
      .option('--eval-cmd <command>', 'evaluate each checkpoint with this shell command ({checkpoint}, {step}, {name})')
      .option('--eval-every <k>', 'also evaluate every k-th checkpoint (the last always); by default only the written checkpoints, their originals, the average and baseline models are evaluated', intArg('--eval-every', 1))
      .option('--eval-jobs <n>', 'evaluation commands run at once', intArg('--eval-jobs', 1, 64), DEFAULTS.evalJobs)
      .option('--eval-timeout <seconds>', 'time limit per evaluation command', intArg('--eval-timeout', 1), DEFAULTS.evalTimeoutSeconds)
      .option('--skip-nonfinite', 'leave parameters with a NaN or infinite value out of the model (carried as-is) instead of failing'),
    '--input-format',
  );
  addOutputOptions(addWorkerOptions(addSamplingOptions(reconstruct)))
  .option('--plan <out>', 'scale-out: one reconstruct task of the merged planned run in <out> (with --shard); cmd merge gathers them')
  .option('--shard <i/n|auto>', 'scale-out: which reconstruct task; auto reads SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX')
  .action(async (dir: string | undefined, flags: Omit<ReconstructFlags, 'format'> & { format: OutputFormat; plan?: string; shard?: string }, command: Command) => {
    if (flags.plan !== undefined || flags.shard !== undefined) {
      const given = Object.keys(command.opts()).filter((k) => command.getOptionValueSource(k) === 'cli');
      const { reconstructShardCommand } = await import('./commands/scale-out.ts');
      await reconstructShardCommand(dir, { ...flags, format: undefined, outputFormat: flags.format }, given);
      return;
    }
    const { reconstructCommand } = await import('./commands/reconstruct.ts');
    await reconstructCommand(dir, { ...flags, format: undefined, outputFormat: flags.format });
  });

  program
    .command('report')
    .description('print a run report, write it as HTML, and check thresholds (exit 1 when one fails)')
    .argument('[report]', 'report.json or its output folder', 'cmd-out/report.json')
    .option('--baseline <report>', 'compare with this earlier run (report.json or its folder)')
    .option('--max-acc-drop <points>', 'fail when CMD final accuracy is more than this many percentage points below the original (and the baseline)')
    .option('--max-recon-error <x>', 'fail when the relative reconstruction error at the last checkpoint exceeds x (a fraction, 0.05, or a percentage, 5%)')
    .option('--max-slowdown <ratio>', 'fail when the runtime exceeds ratio × the baseline runtime (needs --baseline)')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'markdown', 'json']).default('table'))
    .option('--html <file>', 'also write a self-contained HTML report with charts')
    .action(async (file: string, flags: import('./commands/report.ts').ReportCliFlags) => {
      const { reportCommand } = await import('./commands/report.ts');
      await reportCommand(file, flags);
    });

  const watch = program
    .command('watch')
    .description('online CMD alongside training: update the model as each new checkpoint in <dir> is complete (resumable)')
    .argument('<dir>', 'checkpoint folder being written by a training run')
    .option('-o, --out <dir>', 'output folder (model, report and the resumable state)', DEFAULTS.out)
    .option('--warmup <F>', 'warm-up checkpoints 0..F', intArg('--warmup', 2), DEFAULTS.warmup)
    .option('--until <step>', 'stop (exit 0) once the checkpoint with this step is processed', intArg('--until'))
    .option('--poll-ms <n>', 'how often to look for new checkpoints', intArg('--poll-ms', 10), DEFAULTS.pollMs)
    .option('-m, --modes <M>', 'number of modes M', intArg('--modes', 1, 65535), DEFAULTS.modes)
    .addOption(new Option('--format <format>', 'checkpoint format of the input (default: detected)').choices(['safetensors', 'npy', 'npz', 'tfjs', 'torch', 'keras-h5']))
    .option('--force', 'discard an existing output folder and start over')
    .option('-q, --quiet', 'no progress or notes on stderr');
  addWorkerOptions(addSamplingOptions(watch)).action(async (dir: string, flags: import('./commands/watch.ts').WatchFlags) => {
      const { watchCommand } = await import('./commands/watch.ts');
      await watchCommand(dir, flags);
    });

  return program;
}

/**
 * Disk errors that reach here unwrapped (a worker's, or a filesystem call with a path) become
 * one line naming the path, not an internal error (docs/formats.md).
 */
function asCmdError(error: unknown): unknown {
  const revived = reviveWorkerError(error);
  if (revived !== error) return revived;
  const text = diskErrorText(error);
  const file = (error as NodeJS.ErrnoException | undefined)?.path;
  if (text !== undefined && typeof file === 'string') return new RuntimeError(`${file}: ${(error as NodeJS.ErrnoException).syscall ?? 'access'} failed: ${text}`);
  return error;
}

function exitCodeOf(error: unknown): number {
  if (error instanceof CmdError) return error.exitCode;
  return 2;
}

/** Runs the CLI with `argv` (process.argv form) and sets process.exitCode. */
export async function main(argv: string[]): Promise<void> {
  installSignalHandlers();
  const program = buildProgram();
  if (argv.includes('--quiet') || argv.includes('-q')) {
    setQuiet(true);
    // -q promises no notes on stderr, including those about removed scratch leftovers.
    setScratchNote(() => undefined);
    setCleanupNote(() => undefined);
  }
  try {
    await program.parseAsync(argv);
  } catch (thrown) {
    const error = asCmdError(thrown);
    if (error instanceof CommanderError) {
      // --help and --version end with code 0; every usage error is 2, as diff and grep do.
      process.exitCode = error.exitCode === 0 ? 0 : 2;
      return;
    }
    if (interruptSignal.aborted && !(error instanceof CmdError && !(error instanceof CancelledError))) {
      process.exitCode = 130;
      process.stderr.write('cmd: interrupted\n');
      return;
    }
    const message = error instanceof Error ? error.message : String(error);
    // CmdErrors are redacted when made; an unexpected error may carry a signed URL too.
    process.stderr.write(`cmd: ${error instanceof CmdError ? message : `internal error: ${redactUrls(message.split('\n')[0])}`}\n`);
    if (!(error instanceof CmdError) && process.env.CMD_DEBUG) process.stderr.write(`${(error as Error).stack}\n`);
    process.exitCode = exitCodeOf(error);
  }
}

export { intArg };
