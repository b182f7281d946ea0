#!/usr/bin/env node
// The CLI runs from its bundle (scripts/bundle-cli.mjs): one file loads faster than the ~180
// modules of dist/, which remain the library API.
import { main } from '../dist/bundle/main.js';

main(process.argv);
