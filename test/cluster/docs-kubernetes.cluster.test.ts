/**
 * The Kubernetes Jobs docs/scale-out.md shows, run the way the cluster would run them but as
 * local processes: the plan Job's command once, the Indexed Job's command once per completion
 * index with only JOB_COMPLETION_INDEX set (what Kubernetes gives each pod), then the merge Job's
 * command; the shared volume `/data` is a temp folder. The model must equal a one-process
 * `cmd analyze` with the plan's options, and the manifest must be an Indexed Job whose
 * `completions` is the plan's `--shards`.
 */
import { createHash } from 'node:crypto';
import { cpSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { fixture, repoRoot, tempDir } from '../helpers/tmp.ts';

interface JobDoc {
  name: string;
  command: string[];
  text: string;
}

/** The Job documents of the docs' YAML block: name, container command (flow list), raw text. */
function docsJobs(): JobDoc[] {
  const text = readFileSync(path.join(repoRoot, 'docs', 'scale-out.md'), 'utf8');
  const yaml = /```yaml\n([\s\S]*?)```/.exec(text.slice(text.indexOf('## Kubernetes')));
  if (!yaml) throw new Error('docs/scale-out.md, "Kubernetes": no yaml block');
  return yaml[1].split(/^---$/m).map((doc) => {
    const name = /metadata: \{ name: ([\w-]+) \}/.exec(doc)?.[1] ?? '';
    const list = /^\s+command: \[(.*)\]$/m.exec(doc)?.[1] ?? '';
    return { name, text: doc, command: list.split(',').map((w) => w.trim().replace(/^"(.*)"$/, '$1')) };
  });
}

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('docs/scale-out.md, "Kubernetes"', () => {
  it('plan Job, Indexed Job (one run per JOB_COMPLETION_INDEX) and merge Job give the one-process model', () => {
    const jobs = docsJobs();
    expect(jobs.map((j) => j.name)).toEqual(['cmd-plan', 'cmd-shards', 'cmd-merge']);
    const [plan, shards, merge] = jobs;
    expect(shards.text).toMatch(/^\s+completionMode: Indexed$/m);
    const completions = Number(/^\s+completions: (\d+)/m.exec(shards.text)?.[1]);
    const planShards = plan.command[plan.command.indexOf('--shards') + 1];
    expect(String(completions)).toBe(planShards);
    for (const j of jobs) expect(j.text).toMatch(/claimName: cmd-data/);

    // Smaller than the docs' 64 shards, same commands: /data → a temp folder holding the run.
    const n = 4;
    const data = tempDir('cmd-k8s-data-');
    cpSync(fixture('lenet5-fmnist', 'npz'), path.join(data, 'run'), { recursive: true });
    const onData = (cmd: string[]) => cmd.slice(1).map((w) => w.replace(/^\/data\//, `${data}/`)).map((w) => (w === planShards ? String(n) : w));
    expect(plan.command[0]).toBe('cmd');

    const p = runCli(onData(plan.command));
    expect(p.status, p.stderr).toBe(0);
    for (let i = 0; i < n; i++) {
      const s = runCli(onData(shards.command), { env: { JOB_COMPLETION_INDEX: String(i) } });
      expect(s.status, `index ${i}: ${s.stderr}`).toBe(0);
    }
    const m = runCli(onData(merge.command));
    expect(m.status, m.stderr).toBe(0);

    // The plan's method flags: everything after the input folder but -o, --plan-only, --shards.
    const methodFlags: string[] = [];
    const rest = plan.command.slice(plan.command.indexOf('/data/run') + 1);
    for (let k = 0; k < rest.length; k++) {
      if (rest[k] === '-o' || rest[k] === '--shards') k++;
      else if (rest[k] !== '--plan-only') methodFlags.push(rest[k]);
    }
    expect(methodFlags).toEqual(['--modes', '10']);
    const ref = path.join(data, 'ref');
    const one = runCli(['analyze', path.join(data, 'run'), ...methodFlags, '-o', ref]);
    expect(one.status, one.stderr).toBe(0);
    for (const f of ['cmd-model.safetensors', 'report.json']) expect(sha(path.join(data, 'cmd-out', f)), f).toBe(sha(path.join(ref, f)));
  });
});
