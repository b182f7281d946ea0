// The cluster itself works before we trust it with shards: an array job runs every index once,
// each task sees its own SLURM_ARRAY_TASK_ID (what `--shard auto` reads), and a dependent job
// starts only after the array succeeded (the merge step of docs/scale-out.md, "Slurm").
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { haveTools } from '../helpers/optional-tools.ts';
import { runJob, sbatch, waitForJobs } from '../helpers/slurm.ts';
import { tempDir } from '../helpers/tmp.ts';

describe.skipIf(!haveTools('slurm'))('single-node Slurm cluster', () => {
  it('runs --array=0-3 with one SLURM_ARRAY_TASK_ID per task, then an afterok job', async () => {
    const dir = tempDir();
    const array = sbatch('echo "$SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT" > "task-$SLURM_ARRAY_TASK_ID"', { cwd: dir, array: '0-3' });
    const after = sbatch('ls task-* | wc -l > count', { cwd: dir, afterOk: [array] });
    const ends = await waitForJobs([array, after]);
    expect(ends.map((e) => e.state)).toEqual(Array(5).fill('COMPLETED'));
    const tasks = readdirSync(dir).filter((f) => f.startsWith('task-')).sort();
    expect(tasks).toEqual(['task-0', 'task-1', 'task-2', 'task-3']);
    for (const t of tasks) expect(readFileSync(path.join(dir, t), 'utf8')).toBe(`${t.slice(5)} 4\n`);
    expect(readFileSync(path.join(dir, 'count'), 'utf8').trim()).toBe('4');
  });

  it('reports a failing task as FAILED with its exit code', async () => {
    const ends = await runJob('exit 3', { cwd: tempDir() });
    expect(ends).toEqual([{ index: -1, state: 'FAILED', exitCode: '3:0' }]);
  });
});
