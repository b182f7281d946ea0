#!/usr/bin/env node
// Regenerates docs/report-schema.json from the zod schema the code validates reports with.
import { writeFileSync } from 'node:fs';
import { reportJsonSchema } from '../dist/output/report-schema.js';

const file = new URL('../docs/report-schema.json', import.meta.url);
writeFileSync(file, `${JSON.stringify(reportJsonSchema(), null, 2)}\n`);
console.error(`wrote ${file.pathname}`);
