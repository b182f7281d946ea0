/**
 * Trajectory access: the T values of any range of parameters, read by position from every
 * checkpoint, never the whole N × T matrix. The plan is plain data so a worker thread can
 * rebuild a reader from it and do its own reads (the plan is made by plan-trajectory.ts, apart,
 * so worker threads do not load the checkpoint-discovery code).
 */
import type { FloatArray } from '../formats/dtype.ts';
import type { StoredTensor } from '../formats/types.ts';
import type { ModelledTensor } from '../checkpoints/parameter-space.ts';
import { ElementReader } from './element-reader.ts';
import type { RemoteFileFacts } from '../remote/http-range.ts';
import { firstTensor } from './tensor-lookup.ts';

/** Serializable description of where every modelled tensor lives in every checkpoint. */
export interface TrajectoryPlan {
  /** Modelled tensors in parameter-space order (offsets are global indices). */
  tensors: ModelledTensor[];
  /** `stored[t][k]` is tensor k of checkpoint t. */
  stored: StoredTensor[][];
  total: number;
  /**
   * Size and ETag of every remote file as its header read saw them: a worker's reads must find
   * the same file (else exit 2, "changed during the run"). Absent for local checkpoints.
   */
  remote?: RemoteFileFacts[];
}

export class TrajectoryReader {
  readonly plan: TrajectoryPlan;
  readonly checkpoints: number;
  private readonly io = new ElementReader();

  constructor(plan: TrajectoryPlan) {
    this.plan = plan;
    this.checkpoints = plan.stored.length;
  }

  get bytesRead(): number {
    return this.io.bytesRead;
  }

  /**
   * Reads parameters [start, end) from the checkpoints `from..to-1` (all by default) into
   * `out`, laid out checkpoint-major: out[at + (t - from) * stride + i], by default at = 0 and
   * stride = n = end - start.
   */
  readRange(start: number, end: number, out: FloatArray, from = 0, to = this.checkpoints, at = 0, stride = end - start): void {
    const n = end - start;
    if (n <= 0) return;
    if (stride < n || out.length < at + (to - from - 1) * stride + n) throw new RangeError(`readRange: output holds ${out.length} values, need ${at + (to - from - 1) * stride + n} (stride ${stride})`);
    const ts = this.plan.tensors;
    for (let t = from; t < to; t++) {
      const stored = this.plan.stored[t];
      let k = firstTensor(this.plan.tensors, start);
      let pos = start;
      while (pos < end) {
        const tensor = ts[k];
        const take = Math.min(end, tensor.offset + tensor.count) - pos;
        this.io.read(stored[k], pos - tensor.offset, take, out, at + (t - from) * stride + (pos - start));
        pos += take;
        k++;
      }
    }
  }

  /**
   * Reads the full trajectories of scattered parameters (the K samples) into
   * out[j * T + t] (sample-major, as the correlation step wants them), for checkpoints
   * from..to-1.
   */
  readParameters(indices: ArrayLike<number>, out: Float64Array, from = 0, to = this.checkpoints): void {
    const T = to - from;
    for (let j = 0; j < indices.length; j++) {
      const g = indices[j];
      const k = firstTensor(this.plan.tensors, g);
      const el = g - this.plan.tensors[k].offset;
      for (let t = from; t < to; t++) out[j * T + (t - from)] = this.io.readOne(this.plan.stored[t][k], el);
    }
  }

  close(): void {
    this.io.close();
  }
}
