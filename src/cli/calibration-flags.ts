/** Flags shared by the commands that read calibration data (compress, sensitivity). */
import { Option, type Command } from 'commander';
import type { Preprocess } from '../data/dataset.ts';
import type { StaticPipelineOptions } from '../passes/quantize/static-pipeline.ts';
import { int, num, numList } from './common.ts';

export interface CalibrationFlags {
  calibration?: string;
  calibMethod?: 'minmax' | 'percentile' | 'entropy' | 'mse';
  calibSamples?: string;
  percentile?: string;
  activations?: 'int8' | 'uint8' | 'dynamic';
  seed?: string;
  imageSize?: string;
  mean?: string;
  std?: string;
  channels?: 'RGB' | 'BGR' | 'GRAY';
  layout?: 'NCHW' | 'NHWC';
  scale?: string;
  letterbox?: boolean;
}

export function preprocessFrom(o: CalibrationFlags): Preprocess {
  const size = numList(o.imageSize, '--image-size', 2);
  return {
    size: size as [number, number] | undefined, mean: numList(o.mean, '--mean'), std: numList(o.std, '--std'),
    channels: o.channels, layout: o.layout, scale: num(o.scale, '--scale'), letterbox: o.letterbox,
  };
}

export function addCalibrationOptions(cmd: Command, activationChoices: string[]): Command {
  return addPreprocessOptions(cmd
    .option('--calibration <data>', 'calibration data: IDX, .npy/.npz, or an image folder (compress: fed to every pass that reads data; alone it means static W8A8)')
    .addOption(new Option('--calib-method <m>', 'how activation ranges are chosen').choices(['minmax', 'percentile', 'entropy', 'mse']).default('percentile'))
    .option('--calib-samples <n>', 'calibration samples, drawn with a seed (default 256)')
    .option('--percentile <p>', 'for --calib-method percentile (default 99.99)')
    .addOption(new Option('--activations <t>', 'activation quantization (static W8A8 codes need --calibration; dynamic is computed at run time)').choices(activationChoices))
    .option('--seed <n>', 'seed for sampling calibration data (default 1)'));
}

/** How image folders become tensors (calibration, distillation data). */
export function addPreprocessOptions(cmd: Command): Command {
  return cmd
    .option('--image-size <h,w>', 'image folders: resize to this size (default: the model input size)')
    .option('--letterbox', 'image folders: keep the aspect ratio and pad (detectors)')
    .addOption(new Option('--channels <c>', 'image folders: channel order').choices(['RGB', 'BGR', 'GRAY']))
    .addOption(new Option('--layout <l>', 'image folders: tensor layout').choices(['NCHW', 'NHWC']))
    .option('--scale <x>', 'multiplier for 0..255 pixels (default 1/255)')
    .option('--mean <m0,m1,m2>', 'per-channel mean subtracted after scaling')
    .option('--std <s0,s1,s2>', 'per-channel std divided after subtracting the mean');
}

export function staticOptionsFrom(o: CalibrationFlags & { evalData?: string; samples?: string; maxDrop?: string; minCosine?: string; minSqnr?: string; symmetric?: boolean; reduceRange?: boolean }): Omit<StaticPipelineOptions, 'scheduler'> {
  return {
    // In static mode --symmetric / --asymmetric choose the activation ranges (weights are symmetric int8).
    symmetricActivations: o.symmetric,
    reduceRange: o.reduceRange,
    calibrationData: o.calibration!, preprocess: preprocessFrom(o), samples: int(o.calibSamples, '--calib-samples'), seed: int(o.seed, '--seed'),
    method: o.calibMethod, percentile: num(o.percentile, '--percentile'), activations: (o.activations as 'int8' | 'uint8' | undefined) ?? 'uint8',
    evalData: o.evalData, evalSamples: int(o.samples, '--samples'), maxDrop: num(o.maxDrop, '--max-drop'),
    minCosine: num(o.minCosine, '--min-cosine'), minSqnrDb: num(o.minSqnr, '--min-sqnr'),
  };
}
