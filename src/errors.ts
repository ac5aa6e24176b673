/**
 * Typed errors. Every error modelpress raises on purpose is a ModelpressError with a stable
 * `code`, so callers (and the CLI) can tell a bad input from a GPU failure without parsing text.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'GPU_UNAVAILABLE'
  | 'GPU_FAILURE'
  | 'SHADER_MISMATCH'
  | 'UNSUPPORTED'
  | 'FILE_NOT_FOUND'
  | 'INVALID_MODEL'
  | 'UNSUPPORTED_MODEL'
  | 'INVALID_RECIPE'
  | 'OUTPUT_CONFLICT'
  | 'INVALID_DATA'
  | 'NON_FINITE_WEIGHT'
  | 'WORKER_FAILURE';

export class ModelpressError extends Error {
  readonly code: ErrorCode;
  readonly context: Record<string, unknown>;
  constructor(code: ErrorCode, message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ModelpressError';
    this.code = code;
    this.context = context;
  }
}

/** A caller handed a kernel or the scheduler something it cannot work on. */
export class InvalidArgumentError extends ModelpressError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('INVALID_ARGUMENT', message, context);
    this.name = 'InvalidArgumentError';
  }
}

/** `backend: 'gpu'` was demanded but no adapter/device could be had. */
export class GpuUnavailableError extends ModelpressError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GPU_UNAVAILABLE', message, {}, options);
    this.name = 'GpuUnavailableError';
  }
}

/** The GPU rejected or lost work for a kernel (validation, out-of-memory, internal, device lost). */
export class GpuFailureError extends ModelpressError {
  readonly kernel: string;
  readonly kind: 'validation' | 'out-of-memory' | 'internal' | 'device-lost' | 'map-failed';
  constructor(kernel: string, kind: GpuFailureError['kind'], detail: string, options?: { cause?: unknown }) {
    super('GPU_FAILURE', `kernel '${kernel}': GPU ${kind} error: ${detail}`, { kernel, kind }, options);
    this.name = 'GpuFailureError';
    this.kernel = kernel;
    this.kind = kind;
  }
}

/** A WGSL file does not declare what its descriptor expects (caught at load time). */
export class ShaderMismatchError extends ModelpressError {
  constructor(shader: string, detail: string) {
    super('SHADER_MISMATCH', `shader '${shader}': ${detail}`, { shader });
    this.name = 'ShaderMismatchError';
  }
}

/** A model file that cannot be read or used: missing, empty, truncated, not ONNX, inconsistent. */
export class ModelError extends ModelpressError {
  constructor(code: 'FILE_NOT_FOUND' | 'INVALID_MODEL' | 'UNSUPPORTED_MODEL' | 'NON_FINITE_WEIGHT', message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(code, message, context, options);
    this.name = 'ModelError';
  }
}

/** A recipe (JSON/YAML or flags) with an unknown key, a bad value, or a conflict. */
export class RecipeError extends ModelpressError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('INVALID_RECIPE', message, context);
    this.name = 'RecipeError';
  }
}

/** Output path problems: equal to the input, or existing without --force. */
export class OutputError extends ModelpressError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('OUTPUT_CONFLICT', message, context);
    this.name = 'OutputError';
  }
}

/** Evaluation or calibration data that cannot be used with the model. */
export class DataError extends ModelpressError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('INVALID_DATA', message, context);
    this.name = 'DataError';
  }
}

export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** A worker thread of the linear-algebra pool failed or stopped answering mid-computation. */
export class WorkerFailureError extends ModelpressError {
  constructor(message: string) {
    super('WORKER_FAILURE', `${message} (MODELPRESS_THREADS=1 runs everything on one thread)`);
    this.name = 'WorkerFailureError';
  }
}
