/** Reading and making node attributes (the few shapes the passes need). */
import { create, int64, type AttributeMsg, type NodeMsg } from './proto.ts';

/** An INT attribute. */
export function intAttr(name: string, i: number): AttributeMsg {
  return create<AttributeMsg>('AttributeProto', { name, type: 2, i });
}

/** A numeric attribute's value (FLOAT or INT), or `dflt` when the node does not set it. */
export function numberAttr(node: NodeMsg, name: string, dflt: number): number {
  const a = node.attribute.find((x) => x.name === name);
  if (!a) return dflt;
  return a.type === 1 ? (a.f ?? dflt) : int64(a.i);
}

/** Sets (replaces or adds) a node attribute by name. */
export function setAttr(node: NodeMsg, attr: AttributeMsg): void {
  const i = node.attribute.findIndex((a) => a.name === attr.name);
  if (i >= 0) node.attribute[i] = attr;
  else node.attribute.push(attr);
}
