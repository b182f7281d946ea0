#!/usr/bin/env node
// An --eval-cmd stand-in that really reads the checkpoint it is given (npz file or npy folder)
// with the built library and prints a score derived from its values: accuracy = s / (1 + s),
// loss = s, where s is the mean absolute value of all floating-point elements.
import { statSync } from 'node:fs';
import { readNpzCheckpoint } from '../../dist/formats/npz.js';
import { readNpyDirCheckpoint } from '../../dist/formats/npy.js';
import { ElementReader } from '../../dist/trajectory/element-reader.js';

const file = process.argv[2];
const contents = statSync(file).isDirectory() ? await readNpyDirCheckpoint(file) : await readNpzCheckpoint(file);
const io = new ElementReader();
let sum = 0;
let count = 0;
for (const t of contents.tensors) {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const v = new Float64Array(n);
  io.read(t, 0, n, v);
  for (const x of v) sum += Math.abs(x);
  count += n;
}
io.close();
const s = sum / count;
console.log(JSON.stringify({ accuracy: s / (1 + s), loss: s }));
