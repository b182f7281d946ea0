/**
 * Issue 12, point 9: usage errors are one stderr line naming the flag, exit 2 — including
 * numbers too large for a double to hold exactly, which once reached the core as 1e20.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { fixture } from '../helpers/tmp.ts';
import { intArg } from '../../src/cli/options.ts';

const npz = fixture('lenet5-fmnist', 'npz');

function oneLine(args: string[], mention: RegExp): void {
  const r = runCli(args);
  expect(r.status, r.stderr).toBe(2);
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^cmd: /);
  expect(lines[0]).toMatch(mention);
  expect(lines[0]).not.toMatch(/internal error/);
  expect(r.stdout).toBe('');
}

describe('usage errors: one line, exit 2', () => {
  it('an integer beyond 2^53 is refused by name', () => {
    oneLine(['analyze', npz, '-o', '/nonexistent/never', '-k', '99999999999999999999'], /--samples must be an integer between/);
    oneLine(['analyze', npz, '-o', '/nonexistent/never', '--workers', '18446744073709551617'], /--workers/);
    oneLine(['watch', npz, '-o', '/nonexistent/never', '--poll-ms', '9007199254740993'], /--poll-ms/);
  });

  it('--samples beyond the K² array limit is refused by name', () => {
    oneLine(['analyze', npz, '-o', '/nonexistent/never', '-k', '40000'], /--samples must be an integer between 2 and 32768/);
  });

  it('missing arguments, unknown options and bad choices take one line', () => {
    oneLine(['analyze'], /missing required argument 'dir'.*--help/);
    oneLine(['analyze', npz, '--bogus'], /unknown option '--bogus'/);
    oneLine(['analyze', npz, '--modes', 'zero'], /--modes/);
    oneLine(['reconstruct', npz, '--format', 'pickle'], /--format/);
    oneLine(['frobnicate'], /unknown command/);
  });

  it('intArg keeps exact integers and refuses rounded ones', () => {
    const parse = intArg('--x', 0);
    expect(parse('9007199254740991')).toBe(9007199254740991);
    expect(() => parse('9007199254740992')).toThrow(/--x must be an integer between 0 and Infinity/);
    expect(() => parse('1.5')).toThrow(/--x must be an integer/);
  });
});
