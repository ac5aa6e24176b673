/**
 * ONNX protobuf decoding/encoding with protobufjs and the schema in schema/onnx.proto. Decoded
 * messages keep fields the schema does not name ($unknowns) so they are written back unchanged,
 * and `bytes` fields are views into the input buffer, not copies.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { packageRoot } from '../package-root.ts';

export type Int64 = number | { low: number; high: number; unsigned: boolean; toNumber(): number; toString(): string };

export function int64(v: Int64 | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

export interface StringStringEntry {
  key?: string;
  value?: string;
}

export interface TensorProtoMsg {
  dims: Int64[];
  dataType?: number;
  floatData: number[];
  int32Data: number[];
  stringData: Uint8Array[];
  int64Data: Int64[];
  name?: string;
  docString?: string;
  rawData?: Uint8Array;
  externalData: StringStringEntry[];
  dataLocation?: number;
  doubleData: number[];
  uint64Data: Int64[];
  segment?: unknown;
}

export interface AttributeMsg {
  name?: string;
  type?: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProtoMsg;
  g?: GraphMsg;
  floats: number[];
  ints: Int64[];
  strings: Uint8Array[];
  tensors: TensorProtoMsg[];
  graphs: GraphMsg[];
}

export interface NodeMsg {
  input: string[];
  output: string[];
  name?: string;
  opType?: string;
  domain?: string;
  attribute: AttributeMsg[];
  docString?: string;
}

export interface DimMsg {
  dimValue?: Int64;
  dimParam?: string;
  value?: 'dimValue' | 'dimParam';
}

export interface TypeMsg {
  tensorType?: { elemType?: number; shape?: { dim: DimMsg[] } };
  value?: string;
}

export interface ValueInfoMsg {
  name?: string;
  type?: TypeMsg;
  docString?: string;
}

export interface GraphMsg {
  node: NodeMsg[];
  name?: string;
  initializer: TensorProtoMsg[];
  sparseInitializer: unknown[];
  docString?: string;
  input: ValueInfoMsg[];
  output: ValueInfoMsg[];
  valueInfo: ValueInfoMsg[];
}

export interface OpsetMsg {
  domain?: string;
  version?: Int64;
}

export interface ModelMsg {
  irVersion?: Int64;
  opsetImport: OpsetMsg[];
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: Int64;
  docString?: string;
  graph?: GraphMsg;
  metadataProps: StringStringEntry[];
  functions: unknown[];
}

let root: protobuf.Root | undefined;

function schema(): protobuf.Root {
  if (!root) root = protobuf.parse(readFileSync(join(packageRoot(), 'schema', 'onnx.proto'), 'utf8'), { keepCase: false }).root;
  return root;
}

export function messageType(name: 'ModelProto' | 'TensorProto' | 'NodeProto' | 'GraphProto' | 'AttributeProto' | 'ValueInfoProto' | 'SparseTensorProto'): protobuf.Type {
  return schema().lookupType(`onnx.${name}`);
}

/** Decodes keeping unknown fields; throws protobufjs errors on malformed input. */
export function decodeModel(bytes: Uint8Array): ModelMsg {
  const reader = protobuf.Reader.create(bytes);
  (reader as unknown as { discardUnknown: boolean }).discardUnknown = false;
  return messageType('ModelProto').decode(reader) as unknown as ModelMsg;
}

export function encodeModel(model: ModelMsg): Uint8Array {
  return messageType('ModelProto').encode(model as unknown as protobuf.Message).finish();
}

/** A new message of the given type from plain fields (for nodes, tensors and attributes we add). */
export function create<T>(name: Parameters<typeof messageType>[0], fields: Partial<T>): T {
  return messageType(name).fromObject(fields as Record<string, unknown>) as unknown as T;
}
