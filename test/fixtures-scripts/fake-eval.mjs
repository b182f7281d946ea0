#!/usr/bin/env node
// A stand-in for a user's --eval-cmd evaluator, driven by its first argument:
//   json <file>        prints noise, then {"accuracy": <number in file>, "loss": 1 - it}
//   bare <file>        prints the number in <file> alone
//   malformed <file>   prints a last line that is not JSON
//   fail <file>        writes 8 numbered lines to stderr and exits with status 3
//   hang <pidfile>     starts a grandchild that records its pid in <pidfile>, then both sleep
//   overlap <log>      appends "start"/"end" around a 300 ms sleep to <log>, then prints 0.5
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';

const [mode, file] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

switch (mode) {
  case 'json': {
    const acc = Number(readFileSync(file, 'utf8'));
    console.log('loading checkpoint...');
    console.log('');
    console.log(JSON.stringify({ accuracy: acc, loss: 1 - acc }));
    console.log('   ');
    break;
  }
  case 'bare':
    console.log(readFileSync(file, 'utf8').trim());
    break;
  case 'malformed':
    console.log('{"accuracy": 0.9');
    console.log('accuracy=0.9');
    break;
  case 'fail':
    for (let i = 1; i <= 8; i++) console.error(`error line ${i}`);
    console.log(JSON.stringify({ accuracy: 0.5 }));
    process.exit(3);
    break;
  case 'hang': {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    writeFileSync(file, String(child.pid));
    console.error('hanging');
    await sleep(60_000);
    break;
  }
  case 'overlap':
    appendFileSync(file, 'start\n');
    await sleep(300);
    appendFileSync(file, 'end\n');
    console.log('0.5');
    break;
  default:
    console.error(`unknown mode ${mode}`);
    process.exit(2);
}
