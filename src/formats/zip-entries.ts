/**
 * What npz and torch.save archives share: walking a yauzl zip's central directory, with
 * yauzl's own refusals (bad records, absolute or `..` names) turned into the caller's
 * one-line InputError.
 */
import type { Entry, ZipFile } from 'yauzl';
import type { InputError } from '../errors.ts';

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The archive's entries in central-directory order; `refuse` words an unreadable record. */
export async function* zipEntries(zip: ZipFile, refuse: (message: string) => InputError): AsyncGenerator<Entry> {
  const it = zip.eachEntry();
  for (;;) {
    let next: IteratorResult<Entry>;
    try {
      next = await it.next();
    } catch (e) {
      throw refuse(errorText(e));
    }
    if (next.done) return;
    yield next.value;
  }
}
