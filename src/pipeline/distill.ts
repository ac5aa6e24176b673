/**
 * distillModel: knowledge distillation of a student model's head to a teacher's logits, as a
 * command of its own (`modelpress distill`). The student's head — the last Gemm, MatMul or 1x1
 * Conv feeding the output — is re-fitted on the student's own features (passes/distill/fit.ts);
 * the rest of the student is unchanged. Written atomically; inputs are never modified.
 */
import { DataError } from '../errors.ts';
import { OnnxModel, writeModel } from '../onnx/model.ts';
import { Scheduler, type BackendChoice } from '../scheduler/scheduler.ts';
import type { Logger } from '../log.ts';
import type { Preprocess } from '../data/dataset.ts';
import { findHead, findHeadDecoded } from '../passes/distill/head.ts';
import { distillHead, headToRows, type DistillOptions, type DistillReport } from '../passes/distill/fit.ts';
import { writeHead } from '../passes/distill/run.ts';
import { checkOutputPath } from './compress.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { jsonNumbers } from '../json.ts';

export interface DistillModelOptions extends Omit<DistillOptions, 'data' | 'scheduler' | 'preprocess'> {
  teacher: string;
  data: string;
  preprocess?: Preprocess;
  /** The graph output whose head is fitted (default: the first float output that has one). */
  headOutput?: string;
  backend?: BackendChoice;
  scheduler?: Scheduler;
  force?: boolean;
  reportPath?: string;
  logger?: Logger;
}

export async function distillModel(student: string, output: string, o: DistillModelOptions): Promise<DistillReport> {
  checkOutputPath(student, output, Boolean(o.force));
  checkOutputPath(o.teacher, output, true);
  const model = OnnxModel.read(student);
  const teacher = OnnxModel.read(o.teacher);
  const { head, decoded } = await findHeadDecoded(model, o.headOutput);
  if (typeof head === 'string') throw new DataError(`${student}: no head to distill: ${head}`, { path: student });
  if (!model.graph.weights.has(head.weight)) {
    throw new DataError(`${student}: the head weight '${head.weight}' is quantized; distill fits float heads — distill the float student, then quantize it, or run compress with --recover kd (which encodes the head again)`, { path: student });
  }
  const th = findHead(teacher, head.output);
  if (typeof th === 'string') throw new DataError(`${o.teacher}: no head behind output '${head.output}' to read the teacher's logits from: ${th}`, { path: o.teacher });
  if (th.classes !== head.classes) throw new DataError(`the teacher's '${head.output}' has ${th.classes} classes, the student's ${head.classes}`);
  const scheduler = o.scheduler ?? (await Scheduler.create({ backend: o.backend ?? 'auto', logger: o.logger }));
  try {
    const w = decoded ?? model.tensorFloat32(model.graph.weights.get(head.weight)!.tensor);
    const bias = head.bias.kind === 'none' ? new Float32Array(head.classes) : Float32Array.from(model.tensorFloat32(model.graph.weights.get(head.bias.name)!.tensor));
    const { fitted, report } = await distillHead(model, teacher, head, th.logits, { weight: headToRows(head, w), bias }, { ...o, scheduler });
    if (report.kept) await writeHead({ scheduler }, model, head, fitted.weight, fitted.bias);
    writeModel(model, output);
    if (o.reportPath) writeFileAtomic(o.reportPath, JSON.stringify(report, jsonNumbers, 2) + '\n');
    return report;
  } finally {
    if (!o.scheduler) scheduler.dispose();
  }
}
