/**
 * Names of the files a run writes beside the model (docs/report.md). Apart from report.ts so that
 * code which only names them does not load the report's schema (zod) at start-up.
 */
export const REPORT_FILE = 'report.json';
export const SAMPLES_FILE = 'samples.json';
export const RUN_INFO_FILE = 'run-info.json';
