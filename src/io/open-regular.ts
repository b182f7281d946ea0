/**
 * Opening a checkpoint file without ever blocking: open(2) of a FIFO for reading waits for a
 * writer, and while it waits in libuv's thread pool no signal handler gets to end the run. With
 * O_NONBLOCK the open returns at once for any file type, and fstat then tells whether it is a
 * regular file (O_NONBLOCK changes nothing for reads of regular files). docs/formats.md,
 * "Inputs are never modified".
 */
import { constants, openSync, fstatSync, closeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { InputError } from '../errors.ts';

const READ_NONBLOCK = constants.O_RDONLY | constants.O_NONBLOCK;

export const NOT_REGULAR = 'is not a regular file (a FIFO, socket, device or folder); checkpoint files must be regular files';

/** Opens `path` for reading; InputError (`rule`) unless it is a regular file. Open errors are rethrown as is. */
export async function openRegular(path: string, errorFile = path, rule = 'not-regular'): Promise<FileHandle> {
  const fh = await open(path, READ_NONBLOCK);
  let regular = false;
  try {
    regular = (await fh.stat()).isFile();
  } finally {
    if (!regular) await fh.close();
  }
  if (!regular) throw new InputError(errorFile, NOT_REGULAR, rule);
  return fh;
}

/** Synchronous twin of openRegular, for the positioned readers of worker threads. */
export function openRegularSync(path: string): number {
  const fd = openSync(path, READ_NONBLOCK);
  let regular = false;
  try {
    regular = fstatSync(fd).isFile();
  } finally {
    if (!regular) closeSync(fd);
  }
  if (!regular) throw new InputError(path, NOT_REGULAR, 'not-regular');
  return fd;
}
