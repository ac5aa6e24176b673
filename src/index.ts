/** The typed public API of modelpress. The CLI is a thin shell over these. */
export { Scheduler } from './scheduler/scheduler.ts';
export type { SchedulerOptions, BackendChoice, BackendInfo, ProgressEvent } from './scheduler/scheduler.ts';
export type { RunStats, KernelStats, FallbackRecord } from './scheduler/stats.ts';
export { kernels, type KernelName } from './kernels/registry.ts';
export type { KernelDescriptor, Piece, StreamSpec } from './kernels/kernel.ts';
export { quantizeKernel, quantizeValue, type QuantizeJob, type QuantizeResult } from './kernels/quantize.ts';
export { dequantizeKernel, type DequantizeJob, type DequantizeResult, type ErrorStats } from './kernels/dequantize.ts';
export { rangeKernel, type RangeJob, type RangeResult } from './kernels/range.ts';
export { histogramKernel, mergeHistograms, type HistogramJob, type HistogramResult } from './kernels/histogram.ts';
export { channelScoresKernel, type ChannelScoresJob, type ChannelScoresResult, type ChannelCriterion } from './kernels/channel-scores.ts';
export { distillLossKernel, type DistillLossJob, type DistillLossResult } from './kernels/distill-loss.ts';
export { computeQuantParams, paramsFromScales, codeRange, type QuantScheme, type QuantParams, type Bits } from './kernels/qparams.ts';
export { groupView, type Granularity, type GroupView } from './kernels/layout.ts';
export { tolerances, withinTolerance, type Tolerance } from './kernels/tolerances.ts';
export { ModelpressError, InvalidArgumentError, GpuUnavailableError, GpuFailureError, ShaderMismatchError } from './errors.ts';
export { createLogger, type Logger, type LogLevel } from './log.ts';
export { environmentInfo, type EnvironmentInfo } from './info.ts';
export { selfCheck, type SelfCheckRow } from './selfcheck.ts';
