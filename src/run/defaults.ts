/** The defaults table lives at the root (src/defaults.ts) so every layer can read it; the run layer re-exports it. */
export { DEFAULTS, defaultNote, type DefaultName } from '../defaults.ts';
