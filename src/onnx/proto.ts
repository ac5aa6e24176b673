/**
 * ONNX protobuf decoding/encoding with protobufjs and the schema in schema/onnx.proto, through
 * static code generated from it (generated/onnx-pb.ts, `npm run build:proto`): nothing is parsed or
 * compiled when a command starts (the .proto parse and protobufjs's run-time code generation took
 * ~45 ms of every command that reads a model). Decoded messages keep fields the schema does not
 * name ($unknowns) so they are written back unchanged, and `bytes` fields are views into the input
 * buffer, not copies.
 */
import protobuf from 'protobufjs/minimal.js';
import { LENGTH_DELIMITED_FIELDS, onnx } from './generated/onnx-pb.ts';

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

export type MessageName = 'ModelProto' | 'TensorProto' | 'NodeProto' | 'GraphProto' | 'AttributeProto' | 'ValueInfoProto' | 'SparseTensorProto';

/** What the generated code offers for each message (the parts modelpress calls). */
interface StaticMessage {
  decode(reader: protobuf.Reader): unknown;
  encode(message: unknown): protobuf.Writer;
  fromObject(fields: Record<string, unknown>): unknown;
}

const messages = onnx as unknown as Record<MessageName, StaticMessage>;

/** A length-delimited field of a message: a sub-message (named) or bytes. */
export interface DelimitedField {
  name: string;
  /** The sub-message's name in the onnx package (e.g. 'GraphProto', 'TypeProto.Tensor'). */
  message?: string;
}

/** The message and bytes fields of an ONNX message by field number, for walks over an encoding. */
export function delimitedFields(message: string): Record<number, DelimitedField> {
  const f = LENGTH_DELIMITED_FIELDS[message];
  if (!f) throw new Error(`no ONNX message named ${message}`);
  return f;
}

/** Decodes keeping unknown fields; throws protobufjs errors on malformed input. */
export function decodeModel(bytes: Uint8Array): ModelMsg {
  const reader = protobuf.Reader.create(bytes);
  (reader as unknown as { discardUnknown: boolean }).discardUnknown = false;
  return messages.ModelProto.decode(reader) as ModelMsg;
}

export function encodeModel(model: ModelMsg): Uint8Array {
  return messages.ModelProto.encode(model).finish();
}

/** A new message of the given type from plain fields (for nodes, tensors and attributes we add). */
export function create<T>(name: MessageName, fields: Partial<T>): T {
  return messages[name].fromObject(fields as Record<string, unknown>) as T;
}
