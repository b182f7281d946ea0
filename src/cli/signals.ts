/**
 * Ctrl-C handling: the first SIGINT/SIGTERM aborts `interruptSignal`, which every long stage
 * watches; stages stop their workers and remove partial outputs, then the process exits
 * with 130. A second signal exits at once.
 */
const controller = new AbortController();
export const interruptSignal: AbortSignal = controller.signal;

let installed = false;
export function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(sig === 'SIGINT' ? 130 : 143);
    controller.abort(new Error(sig));
    // If nothing is listening (e.g. a stage stuck in sync code), leave after a grace period.
    setTimeout(() => process.exit(130), 10_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  });
}
