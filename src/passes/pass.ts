/** What every pass gets and gives back. Passes edit one in-memory model; the pipeline reads and writes it. */
import type { OnnxModel } from '../onnx/model.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { Logger } from '../log.ts';
import type { Preprocess } from '../data/dataset.ts';
import type { TensorReport } from './quantize/weight-only.ts';
import type { Skip } from './quantize/targets.ts';

/** Calibration data, read by every pass that uses it (pruning recovery, static W8A8, ...). */
export interface CalibrationSource {
  data: string;
  preprocess?: Preprocess;
  /** Samples drawn with `seed` (default 256). */
  samples?: number;
  seed?: number;
}

export interface PassContext {
  /** The model as the earlier passes left it; a pass edits it in place or returns a replacement. */
  model: OnnxModel;
  /** The input model's path: the float reference for evaluation and reconstruction. */
  inputPath: string;
  scheduler: Scheduler;
  calibration?: CalibrationSource;
  logger?: Logger;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface PassOutcome<Report = unknown> {
  /** Set when the pass produced a new model object instead of editing `ctx.model`. */
  model?: OnnxModel;
  report: Report;
  /** Weights the pass encoded (quantize) and skipped, for the report's per-tensor table. */
  tensors?: TensorReport[];
  skipped?: Skip[];
  /** Whether the pass read the calibration data (said in the report and --help). */
  usedCalibration: boolean;
}

export interface PassDescriptor<Options, Report = unknown> {
  name: string;
  /** Position in the fixed order passes must follow (a lower rank runs first). */
  rank: number;
  summary: string;
  /** What the pass does with --calibration data, or null when it reads none. */
  calibrationUse: string | null;
  run(ctx: PassContext, options: Options): Promise<PassOutcome<Report>>;
}
