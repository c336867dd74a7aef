/**
 * The in-memory graph form used by folding, shape inference and the VJP: plain nodes with typed
 * attributes, graph inputs/outputs, and initializers as host tensors. Converts to and from
 * `ModelProto`.
 *
 * @module
 */
import onnxProto from "onnx-proto";
import { GraphError } from "./errors.ts";
import { fromTensorProto, type HostTensor, toNum, toTensorProto } from "./tensor.ts";

const { onnx } = onnxProto;

/** The decoded ONNX model type from onnx-proto. */
export type ModelProto = InstanceType<typeof onnx.ModelProto>;

/** One typed attribute value. */
export type Attr =
  | { type: "int"; value: number }
  | { type: "float"; value: number }
  | { type: "ints"; value: number[] }
  | { type: "floats"; value: number[] }
  | { type: "string"; value: string }
  | { type: "strings"; value: string[] }
  | { type: "tensor"; value: HostTensor };

/** A graph node. */
export interface Node {
  opType: string;
  name: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attr>;
}

/** A graph input or output: name, element type and dims (a string dim is symbolic). */
export interface ValueInfo {
  name: string;
  dtype: number;
  dims: (number | string)[];
}

/** A whole graph plus the model metadata needed to write it back. */
export interface Graph {
  name: string;
  nodes: Node[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Map<string, HostTensor>;
  /** Version of the default ("" / ai.onnx) opset. */
  opset: number;
  irVersion: number;
  producerName: string;
}

/** Reads an int attribute, or `fallback` when absent. */
export function attrInt(node: Node, name: string, fallback: number): number {
  const a = node.attrs[name];
  return a && a.type === "int" ? a.value : fallback;
}

/** Reads a float attribute, or `fallback` when absent. */
export function attrFloat(node: Node, name: string, fallback: number): number {
  const a = node.attrs[name];
  return a && (a.type === "float" || a.type === "int") ? a.value : fallback;
}

/** Reads an ints attribute, or `fallback` when absent. */
export function attrInts(
  node: Node,
  name: string,
  fallback: number[] | undefined,
): number[] | undefined {
  const a = node.attrs[name];
  return a && a.type === "ints" ? a.value : fallback;
}

/** Reads a string attribute, or `fallback` when absent. */
export function attrString(node: Node, name: string, fallback: string): string {
  const a = node.attrs[name];
  return a && a.type === "string" ? a.value : fallback;
}

/** Ops whose output is a view of their first input: it shares that input's memory. */
export const VIEW_OPS: ReadonlySet<string> = new Set([
  "Reshape",
  "Squeeze",
  "Unsqueeze",
  "Flatten",
  "Identity",
]);

/** A short description of a node for error messages. */
export function describeNode(node: Node): string {
  return `${node.opType} node "${node.name}"`;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Converts a decoded `ModelProto` (with all tensor data embedded) to a graph. */
export function graphFromModel(model: ModelProto): Graph {
  const g = model.graph;
  if (!g) throw new GraphError("model has no graph");
  let opset = 0;
  for (const o of model.opsetImport ?? []) {
    if (!o.domain || o.domain === "ai.onnx") opset = toNum(o.version);
  }
  const initializers = new Map<string, HostTensor>();
  for (const t of g.initializer ?? []) initializers.set(t.name ?? "", fromTensorProto(t));
  const valueInfo = (v: onnxProto.onnx.IValueInfoProto): ValueInfo => ({
    name: v.name ?? "",
    dtype: v.type?.tensorType?.elemType ?? 0,
    dims: (v.type?.tensorType?.shape?.dim ?? []).map((d) =>
      d.dimParam
        ? d.dimParam
        : d.dimValue !== undefined && d.dimValue !== null
        ? toNum(d.dimValue)
        : "?"
    ),
  });
  const nodes: Node[] = (g.node ?? []).map((n, i) => {
    const attrs: Record<string, Attr> = {};
    for (const a of n.attribute ?? []) {
      const name = a.name ?? "";
      switch (a.type) {
        case onnx.AttributeProto.AttributeType.INT:
          attrs[name] = { type: "int", value: toNum(a.i) };
          break;
        case onnx.AttributeProto.AttributeType.FLOAT:
          attrs[name] = { type: "float", value: a.f ?? 0 };
          break;
        case onnx.AttributeProto.AttributeType.INTS:
          attrs[name] = { type: "ints", value: (a.ints ?? []).map(toNum) };
          break;
        case onnx.AttributeProto.AttributeType.FLOATS:
          attrs[name] = { type: "floats", value: [...(a.floats ?? [])] };
          break;
        case onnx.AttributeProto.AttributeType.STRING:
          attrs[name] = { type: "string", value: decoder.decode(a.s ?? new Uint8Array()) };
          break;
        case onnx.AttributeProto.AttributeType.STRINGS:
          attrs[name] = { type: "strings", value: (a.strings ?? []).map((s) => decoder.decode(s)) };
          break;
        case onnx.AttributeProto.AttributeType.TENSOR:
          attrs[name] = { type: "tensor", value: fromTensorProto(a.t!) };
          break;
        default:
          throw new GraphError(
            `${n.opType} node "${n.name}": attribute "${name}" has unsupported type ${a.type}`,
          );
      }
    }
    return {
      opType: n.opType ?? "",
      name: n.name || `${n.opType}_${i}`,
      domain: n.domain ?? "",
      inputs: [...(n.input ?? [])],
      outputs: [...(n.output ?? [])],
      attrs,
    };
  });
  const initNames = new Set(initializers.keys());
  return {
    name: g.name ?? "graph",
    nodes,
    inputs: (g.input ?? []).filter((v) => !initNames.has(v.name ?? "")).map(valueInfo),
    outputs: (g.output ?? []).map(valueInfo),
    initializers,
    opset,
    irVersion: toNum(model.irVersion ?? 8),
    producerName: model.producerName ?? "",
  };
}

/** Converts a graph back to a `ModelProto` with all tensor data embedded. */
export function modelFromGraph(graph: Graph): ModelProto {
  const T = onnx.AttributeProto.AttributeType;
  const attrProto = (name: string, a: Attr) => {
    switch (a.type) {
      case "int":
        return onnx.AttributeProto.create({ name, type: T.INT, i: a.value });
      case "float":
        return onnx.AttributeProto.create({ name, type: T.FLOAT, f: a.value });
      case "ints":
        return onnx.AttributeProto.create({ name, type: T.INTS, ints: a.value });
      case "floats":
        return onnx.AttributeProto.create({ name, type: T.FLOATS, floats: a.value });
      case "string":
        return onnx.AttributeProto.create({ name, type: T.STRING, s: encoder.encode(a.value) });
      case "strings":
        return onnx.AttributeProto.create({
          name,
          type: T.STRINGS,
          strings: a.value.map((s) => encoder.encode(s)),
        });
      case "tensor":
        return onnx.AttributeProto.create({ name, type: T.TENSOR, t: toTensorProto("", a.value) });
    }
  };
  const valueInfo = (v: ValueInfo) =>
    onnx.ValueInfoProto.create({
      name: v.name,
      type: {
        tensorType: {
          elemType: v.dtype,
          shape: {
            dim: v.dims.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d }),
          },
        },
      },
    });
  return onnx.ModelProto.create({
    irVersion: Math.max(graph.irVersion, 8),
    producerName: graph.producerName || "latentforge",
    opsetImport: [{ domain: "", version: graph.opset }],
    graph: {
      name: graph.name,
      node: graph.nodes.map((n) =>
        onnx.NodeProto.create({
          opType: n.opType,
          name: n.name,
          domain: n.domain,
          input: n.inputs,
          output: n.outputs,
          attribute: Object.entries(n.attrs).map(([k, a]) => attrProto(k, a)),
        })
      ),
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
      initializer: [...graph.initializers].map(([name, t]) => toTensorProto(name, t)),
    },
  });
}
