/**
 * The tool's error vocabulary. Each class carries the process exit code the CLI maps it to
 * (DEVELOPERS.md: 0 ok, 1 a gate failed, 2 trouble, 130 interrupted). Only `cli/main.ts`
 * turns these into an exit status.
 */
import { redactUrls } from './remote/url.ts';
export class CmdError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    // A remote file's query string (a presigned signature) never reaches an error line.
    super(redactUrls(message));
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** A checkpoint, model or report file is missing, unreadable or breaks a format rule. */
export class InputError extends CmdError {
  readonly file: string;
  /** Short stable id of the rule that was broken (e.g. 'header-too-large'), for tests and fuzzing. */
  readonly rule: string;
  constructor(file: string, message: string, rule = 'input') {
    super(`${file}: ${message}`, 2);
    this.file = redactUrls(file);
    this.rule = rule;
  }
}

/** The command line asks for something impossible or contradictory. */
export class UsageError extends CmdError {
  constructor(message: string) {
    super(message, 2);
  }
}

/**
 * The run itself failed although its inputs were readable: an evaluation command that crashed,
 * a disk that filled up, a worker that died. Exit 2 like bad input, but not blamed on an input.
 */
export class RuntimeError extends CmdError {
  constructor(message: string) {
    super(message, 2);
  }
}

/** A `cmd report` threshold (or another check) did not hold. */
export class GateError extends CmdError {
  constructor(message: string) {
    super(message, 1);
  }
}

/** The run was interrupted (SIGINT/SIGTERM or an AbortSignal). */
export class CancelledError extends CmdError {
  constructor(message = 'interrupted') {
    super(message, 130);
  }
}

/** Throws an InputError unless `condition` holds; the message is built lazily. */
export function ensure(condition: unknown, file: string, rule: string, message: () => string): asserts condition {
  if (!condition) throw new InputError(file, message(), rule);
}
