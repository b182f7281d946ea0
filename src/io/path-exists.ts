import { promises as fsp } from 'node:fs';

/** Whether anything (file, folder, link target) is at `p`. */
export async function pathExists(p: string): Promise<boolean> {
  return fsp.access(p).then(
    () => true,
    () => false,
  );
}
