/**
 * The one place chunk results reach the model file: a range of parameters' a, b (float32) and
 * mode, written by position into their tensor's slots. Post-hoc's fit workers and the online
 * tasks both call it from their worker threads (docs/architecture.md).
 */
import { writeFullySync } from '../io/atomic-file.ts';
import { writingToSync } from '../io/disk-errors.ts';
import type { TensorSlots } from './worker.ts';

export function writeParameterSlots(fd: number, file: string, slot: TensorSlots, start: number, count: number, a: Float32Array, b: Float32Array, mode: Uint8Array | Uint16Array, modeBytes: 1 | 2): void {
  writingToSync(file, () => {
    writeFullySync(fd, new Uint8Array(a.buffer, a.byteOffset, count * 4), slot.a + start * 4);
    writeFullySync(fd, new Uint8Array(b.buffer, b.byteOffset, count * 4), slot.b + start * 4);
    writeFullySync(fd, new Uint8Array(mode.buffer, mode.byteOffset, count * modeBytes), slot.mode + start * modeBytes);
  });
}
