/**
 * yauzl, loaded on the first zip archive read (npz, torch, Keras): a run over safetensors or
 * tfjs checkpoints — every shard task of one included (docs/scale-out.md, "Benchmark") — then
 * does not parse it at start-up.
 */
type Yauzl = typeof import('yauzl');
let lib: Promise<Yauzl> | undefined;

export function zipLibrary(): Promise<Yauzl> {
  return (lib ??= import('yauzl').then((m) => (m as { default?: Yauzl }).default ?? m));
}
