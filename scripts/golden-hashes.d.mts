/** Types for scripts/golden-hashes.mjs. */
export interface OutputDigest {
  model: string;
  report: string;
}
export declare const goldenFile: string;
export declare function digestOutputs(outDir: string, inputDir: string): OutputDigest;
export declare function runAnalyze(input: string, args: string[], out: string): OutputDigest;
