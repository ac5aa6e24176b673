/**
 * A graph index over a GraphProto: who produces and who consumes each value, weights stored as
 * initializers or as Constant nodes (alike), and safe edits (unique names, topological order kept).
 */
import type { GraphMsg, NodeMsg, TensorProtoMsg } from './proto.ts';

export interface WeightRef {
  name: string;
  tensor: TensorProtoMsg;
  source: 'initializer' | 'constant';
  /** The Constant node, for constant weights. */
  node?: NodeMsg;
}

export interface Use {
  node: NodeMsg;
  index: number;
}

export class GraphIR {
  readonly msg: GraphMsg;
  readonly producers = new Map<string, NodeMsg>();
  readonly consumers = new Map<string, Use[]>();
  readonly weights = new Map<string, WeightRef>();
  private readonly names = new Set<string>();

  constructor(msg: GraphMsg) {
    this.msg = msg;
    for (const t of msg.initializer) {
      this.weights.set(t.name ?? '', { name: t.name ?? '', tensor: t, source: 'initializer' });
      this.names.add(t.name ?? '');
    }
    for (const v of [...msg.input, ...msg.output, ...msg.valueInfo]) this.names.add(v.name ?? '');
    for (const node of msg.node) {
      if (node.name) this.names.add(node.name);
      node.output.forEach((o) => {
        this.producers.set(o, node);
        this.names.add(o);
      });
      node.input.forEach((i, index) => {
        if (!i) return;
        let list = this.consumers.get(i);
        if (!list) this.consumers.set(i, (list = []));
        list.push({ node, index });
      });
      if (node.opType === 'Constant' && (node.domain ?? '') === '' && node.output.length === 1) {
        const value = node.attribute.find((a) => a.name === 'value' && a.t);
        if (value?.t) this.weights.set(node.output[0], { name: node.output[0], tensor: value.t, source: 'constant', node });
      }
    }
  }

  uses(name: string): Use[] {
    return this.consumers.get(name) ?? [];
  }

  isGraphOutput(name: string): boolean {
    return this.msg.output.some((o) => o.name === name);
  }

  /** A name not used anywhere in the graph, derived from `base`. */
  uniqueName(base: string): string {
    let name = base;
    for (let i = 1; this.names.has(name); i++) name = `${base}_${i}`;
    this.names.add(name);
    return name;
  }

  /**
   * Replaces the weight `name` by new initializers and nodes that produce a value of the same name
   * (consumers are untouched). The nodes go first in the node list: their inputs are initializers.
   */
  replaceWeight(name: string, initializers: TensorProtoMsg[], nodes: NodeMsg[]): void {
    const w = this.weights.get(name);
    if (!w) throw new Error(`no weight named ${name}`);
    if (w.source === 'initializer') {
      this.msg.initializer.splice(this.msg.initializer.indexOf(w.tensor), 1);
      // Older models list initializers as graph inputs too; the value is now computed.
      const inputIdx = this.msg.input.findIndex((i) => i.name === name);
      if (inputIdx >= 0) this.msg.input.splice(inputIdx, 1);
    } else {
      this.msg.node.splice(this.msg.node.indexOf(w.node!), 1);
    }
    this.weights.delete(name);
    this.msg.initializer.push(...initializers);
    this.msg.node.unshift(...nodes);
    for (const t of initializers) this.names.add(t.name ?? '');
    for (const n of nodes) n.output.forEach((o) => this.producers.set(o, n));
  }
}
