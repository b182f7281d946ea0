/** The trajectory plan of a checkpoint set: where every modelled tensor lives in every checkpoint. */
import { modelledTensors, type CheckpointSet } from '../checkpoints/checkpoint-set.ts';
import { remoteClient, type RemoteFileFacts } from '../remote/http-range.ts';
import { isRemote } from '../remote/url.ts';
import type { TrajectoryPlan } from './trajectory-reader.ts';

export function planTrajectory(set: CheckpointSet): TrajectoryPlan {
  const stored = set.checkpoints.map((c) => modelledTensors(set, c));
  const urls = [...new Set(stored.flatMap((row) => row.flatMap((t) => t.spans.map((s) => s.path))).filter(isRemote))];
  const plan: TrajectoryPlan = { tensors: set.space.tensors, stored, total: set.space.total };
  if (urls.length) plan.remote = urls.map((u) => remoteClient().facts(u)).filter((f): f is RemoteFileFacts => f !== undefined);
  return plan;
}
