/**
 * The contract between format readers and everything downstream. A reader never returns
 * tensor values: it validates a checkpoint's headers and says where each tensor's bytes
 * live. Values are then read by position (`trajectory/read-elements.ts`), so a checkpoint
 * of any size is opened in milliseconds and never loaded whole.
 */
import type { DType } from './dtype.ts';

export type FormatName = 'safetensors' | 'npy' | 'npz' | 'tfjs' | 'torch' | 'keras-h5';

/** A run of bytes in one file. A tensor's bytes are the concatenation of its spans. */
export interface ByteSpan {
  path: string;
  offset: number;
  length: number;
}

/** How the bytes on disk encode the tensor's logical values. */
export interface StoredEncoding {
  /** Element type on disk (differs from the logical dtype only for quantized tfjs weights). */
  dtype: DType;
  /** Big-endian npy data; everything else is little-endian. */
  bigEndian?: boolean;
  /** tfjs affine quantization: value = q × scale + min (no rounding for float32 weights). */
  quantization?: { scale: number; min: number };
}

/** One tensor of one checkpoint: what it is and where its row-major bytes are. */
export interface StoredTensor {
  name: string;
  /** Logical element type, as the framework sees it (F32 for a quantized float32 tfjs weight). */
  dtype: DType;
  shape: number[];
  encoding: StoredEncoding;
  /** Row-major (C-order) bytes of the encoded elements, in order. */
  spans: ByteSpan[];
}

/** A validated checkpoint: its tensors in storage order, plus what writers need to reproduce it. */
export interface CheckpointContents {
  format: FormatName;
  /** Every file that belongs to this checkpoint (data and headers), for sizes and integrity. */
  files: string[];
  tensors: StoredTensor[];
  /** safetensors `__metadata__` (merged over shards); empty for formats without one. */
  metadata: Record<string, string>;
  /** Format-specific material a writer needs to round-trip (tfjs model.json minus the manifest, …). */
  extras?: Record<string, unknown>;
}

/** A tensor handed to a writer, with its values already encoded as little-endian bytes. */
export interface TensorToWrite {
  name: string;
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}
