/** Is `pid` a live process on this host? (EPERM: alive, owned by someone else.) Used to tell a
 * killed run's leftovers (locks, staging, scratch) from those of a run still going. */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
