/**
 * A small API to emit nodes, initializers, inputs and outputs into a graph. Used to write
 * models from scratch (test fixtures) and by the VJP to append the backward pass.
 *
 * @module
 */
import { GraphError } from "./errors.ts";
import { type Attr, type Graph, modelFromGraph, type ModelProto, type Node } from "./graph.ts";
import { encodeModel } from "./model_io.ts";
import { DataType, type HostTensor, makeTensor } from "./tensor.ts";

/** An attribute as written by callers: integers, `{ float }`, lists, strings or a tensor. */
export type AttrInput =
  | number
  | number[]
  | string
  | string[]
  | HostTensor
  | { float: number }
  | { floats: number[] };

function toAttr(name: string, v: AttrInput): Attr {
  if (typeof v === "number") {
    if (!Number.isInteger(v)) {
      throw new GraphError(`attribute "${name}": ${v} is not an integer; write { float: ${v} }`);
    }
    return { type: "int", value: v };
  }
  if (typeof v === "string") return { type: "string", value: v };
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === "string") return { type: "strings", value: v as string[] };
    return { type: "ints", value: v as number[] };
  }
  if ("float" in v) return { type: "float", value: v.float };
  if ("floats" in v) return { type: "floats", value: v.floats };
  return { type: "tensor", value: v };
}

/** Options of {@link GraphBuilder}. */
export interface GraphBuilderOptions {
  /** Default-domain opset of a new graph (default 17). */
  opset?: number;
  /** Name of a new graph (default "graph"). */
  name?: string;
  /** Extend this graph instead of starting an empty one (it is modified in place). */
  graph?: Graph;
}

/**
 * Emits nodes and initializers into a graph with collision-free names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeModel } from "./model_io.ts";
 * import { DataType } from "./tensor.ts";
 * const b = new GraphBuilder();
 * const x = b.input("x", DataType.FLOAT, [1, 3]);
 * const y = b.node("Relu", [x]);
 * b.output(y, DataType.FLOAT, [1, 3]);
 * assert.equal(y, "Relu_out0"); // names are made unique as nodes are added
 * assert.equal(decodeModel(b.toBytes()).graph?.node?.[0].opType, "Relu");
 * ```
 */
export class GraphBuilder {
  readonly graph: Graph;
  #used = new Set<string>();
  /** Names handed out by fresh() and not yet bound to a value. */
  #reserved = new Set<string>();
  #counter = 0;

  constructor({ opset = 17, name = "graph", graph }: GraphBuilderOptions = {}) {
    this.graph = graph ?? {
      name,
      nodes: [],
      inputs: [],
      outputs: [],
      initializers: new Map(),
      opset,
      irVersion: 8,
      producerName: "latentforge",
    };
    for (const v of this.graph.inputs) this.#used.add(v.name);
    for (const k of this.graph.initializers.keys()) this.#used.add(k);
    for (const n of this.graph.nodes) {
      for (const o of n.outputs) this.#used.add(o);
      this.#used.add(n.name);
    }
  }

  /** The default-domain opset of the graph. */
  get opset(): number {
    return this.graph.opset;
  }

  /** Returns a name starting with `hint` that no value or node uses yet, and reserves it. */
  fresh(hint: string): string {
    let name = hint;
    while (this.#used.has(name)) name = `${hint}_${++this.#counter}`;
    this.#used.add(name);
    this.#reserved.add(name);
    return name;
  }

  #claim(name: string, what: string): void {
    if (this.#reserved.delete(name)) return;
    if (this.#used.has(name)) throw new GraphError(`${what} name "${name}" is already used`);
    this.#used.add(name);
  }

  /** Declares a graph input and returns its name. */
  input(name: string, dtype: number, dims: (number | string)[]): string {
    this.#claim(name, "input");
    this.graph.inputs.push({ name, dtype, dims });
    return name;
  }

  /** Declares `value` as a graph output (renamed through an Identity when `as` is given). */
  output(value: string, dtype: number, dims: (number | string)[], as?: string): string {
    let name = value;
    if (as !== undefined && as !== value) {
      this.#claim(as, "output");
      this.graph.nodes.push({
        opType: "Identity",
        name: this.fresh(`${as}_identity`),
        domain: "",
        inputs: [value],
        outputs: [as],
        attrs: {},
      });
      name = as;
    }
    this.graph.outputs.push({ name, dtype, dims });
    return name;
  }

  /** Adds an initializer and returns its name. */
  initializer(tensor: HostTensor, hint = "const"): string {
    const name = this.fresh(hint);
    this.#reserved.delete(name);
    this.graph.initializers.set(name, tensor);
    return name;
  }

  /** Adds a constant tensor of the given type and returns its name. */
  constant(dtype: number, dims: number[], values: ArrayLike<number>, hint = "const"): string {
    return this.initializer(makeTensor(dtype, dims, values), hint);
  }

  /** A scalar constant (shape []) of type `dtype` (default float32). */
  scalar(value: number, dtype: number = DataType.FLOAT): string {
    return this.constant(dtype, [], [value], "scalar");
  }

  /** A 1-D int64 constant, as used for shapes, axes, pads and slice bounds. */
  int64s(values: number[]): string {
    return this.constant(DataType.INT64, [values.length], values, "ints");
  }

  /** Emits one node and returns the name of its first output. */
  node(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrInput | undefined> = {},
    opts: { outputs?: number | string[]; name?: string; domain?: string } = {},
  ): string {
    return this.nodeOutputs(opType, inputs, attrs, opts)[0];
  }

  /** Emits one node and returns the names of all its outputs. */
  nodeOutputs(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrInput | undefined> = {},
    { outputs = 1, name, domain = "" }: {
      outputs?: number | string[];
      name?: string;
      domain?: string;
    } = {},
  ): string[] {
    const nodeName = this.fresh(name ?? opType);
    this.#reserved.delete(nodeName);
    const outs = typeof outputs === "number"
      ? Array.from({ length: outputs }, (_, i) => {
        const o = this.fresh(`${nodeName}_out${i}`);
        this.#reserved.delete(o);
        return o;
      })
      : outputs.map((o) => {
        this.#claim(o, "value");
        return o;
      });
    const node: Node = {
      opType,
      name: nodeName,
      domain,
      inputs,
      outputs: outs,
      attrs: Object.fromEntries(
        Object.entries(attrs).filter(([, v]) => v !== undefined).map((
          [k, v],
        ) => [k, toAttr(k, v!)]),
      ),
    };
    this.graph.nodes.push(node);
    return outs;
  }

  /** The graph as a `ModelProto`. */
  toModel(): ModelProto {
    return modelFromGraph(this.graph);
  }

  /** The graph as serialized ONNX bytes. */
  toBytes(): Uint8Array {
    return encodeModel(this.graph);
  }
}
