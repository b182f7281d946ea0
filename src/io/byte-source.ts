/**
 * Where header readers get bytes from: a local regular file by positioned reads, or a remote
 * http(s) file by Range requests (src/remote/remote-source.ts, loaded only for URLs). The
 * parsers above it are the same for both, so a remote header is validated exactly like a
 * local one (docs/scale-out.md, "Checkpoints over HTTP and the Hugging Face Hub").
 */
import { InputError } from '../errors.ts';
import { isRemote } from '../remote/url.ts';
import { openRegular } from './open-regular.ts';

export interface ByteSource {
  /** The file's size in bytes. */
  readonly size: number;
  /** Exactly `length` bytes from `position` (short reads retried; past the end is an error). */
  read(position: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Opens `path` (a file or an http(s) URL); errors are one-line InputErrors naming it. */
export async function openByteSource(path: string): Promise<ByteSource> {
  if (isRemote(path)) return (await import('../remote/remote-source.ts')).openRemoteSource(path);
  let fh;
  try {
    fh = await openRegular(path, path, 'unreadable');
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(path, `cannot open file (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 'unreadable');
  }
  try {
    const stat = await fh.stat();
    if (!stat.isFile()) throw new InputError(path, 'is not a regular file', 'unreadable');
    const handle = fh;
    return {
      size: stat.size,
      async read(position: number, length: number): Promise<Uint8Array> {
        const buffer = new Uint8Array(length);
        let done = 0;
        while (done < length) {
          const { bytesRead } = await handle.read(buffer, done, length - done, position + done);
          if (bytesRead === 0) throw new RangeError(`unexpected end of file at byte ${position + done}`);
          done += bytesRead;
        }
        return buffer;
      },
      close: () => handle.close(),
    };
  } catch (err) {
    await fh.close();
    if (err instanceof InputError) throw err;
    throw new InputError(path, `cannot read header (${(err as Error).message.replace(/\s+/g, ' ')})`, 'unreadable');
  }
}
