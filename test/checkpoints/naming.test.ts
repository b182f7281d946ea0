import { describe, expect, it } from 'vitest';
import { naturalCompare, stepFromName, stripCheckpointSuffix } from '../../src/checkpoints/naming.ts';

describe('natural order and steps', () => {
  it('orders digit runs as numbers', () => {
    const names = ['epoch_10', 'epoch_2', 'epoch_1', 'checkpoint-1000', 'checkpoint-500', 'layers.10.weight', 'layers.2.weight'];
    expect([...names].sort(naturalCompare)).toEqual(['checkpoint-500', 'checkpoint-1000', 'epoch_1', 'epoch_2', 'epoch_10', 'layers.2.weight', 'layers.10.weight']);
  });
  it('is a total order that separates zero padding', () => {
    expect(naturalCompare('e01', 'e1')).not.toBe(0);
    expect(Math.sign(naturalCompare('e01', 'e1'))).toBe(-Math.sign(naturalCompare('e1', 'e01')));
  });
  it('reads the last number of the name, without the format suffix', () => {
    expect(stepFromName('epoch_010.npz')).toBe(10);
    expect(stepFromName('checkpoint-1500')).toBe(1500);
    expect(stepFromName('run3-epoch12.safetensors')).toBe(12);
    expect(stepFromName('model.safetensors.index.json')).toBeUndefined();
    expect(stepFromName('final.npy')).toBeUndefined();
    expect(stripCheckpointSuffix('x.safetensors.index.json')).toBe('x');
  });
});
