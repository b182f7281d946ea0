import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fromNum, num, reportJsonSchema, RunReportSchema } from '../../src/output/report-schema.ts';
import { readReport } from '../../src/output/report.ts';
import { InputError } from '../../src/errors.ts';
import { repoRoot, tempDir } from '../helpers/tmp.ts';

describe('report.json', () => {
  it('docs/report-schema.json is generated from the schema the code uses', () => {
    const committed = JSON.parse(readFileSync(path.join(repoRoot, 'docs', 'report-schema.json'), 'utf8'));
    expect(committed).toEqual(JSON.parse(JSON.stringify(reportJsonSchema())));
  });

  it('encodes non-finite numbers as explicit strings, never null', () => {
    expect([num(1.5), num(NaN), num(Infinity), num(-Infinity)]).toEqual([1.5, 'NaN', 'Infinity', '-Infinity']);
    expect([fromNum('NaN'), fromNum('Infinity'), fromNum(2)]).toEqual([NaN, Infinity, 2]);
  });

  it('a file that is not a report is an InputError naming it', async () => {
    const f = path.join(tempDir(), 'r.json');
    (await import('node:fs')).writeFileSync(f, JSON.stringify({ schemaVersion: 1 }));
    await expect(readReport(f)).rejects.toBeInstanceOf(InputError);
    await expect(readReport(f)).rejects.toThrow(/r\.json: is not a cmd report/);
  });
});
