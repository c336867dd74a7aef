/**
 * Reading and writing ONNX models, including weights stored in external data files.
 *
 * @module
 */
import onnxProto from "onnx-proto";
import { ModelIoError } from "./errors.ts";
import { type Graph, graphFromModel, modelFromGraph, type ModelProto } from "./graph.ts";
import { toNum } from "./tensor.ts";
import { writeFileAtomic } from "../store/objects.ts";

const { onnx } = onnxProto;

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : path.slice(0, i) || "/";
}

/**
 * Decodes model bytes; tensors with external data are loaded from files relative to `baseDir`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ModelIoError } from "./errors.ts";
 * import { GraphBuilder } from "./graph_builder.ts";
 * const b = new GraphBuilder();
 * b.output(b.node("Relu", [b.input("x", 1, [2])]), 1, [2]);
 * const model = decodeModel(b.toBytes(), { baseDir: "." });
 * assert.equal(model.graph?.node?.[0].opType, "Relu");
 * assert.throws(() => decodeModel(new Uint8Array([0xff, 0xff])), ModelIoError);
 * ```
 */
export function decodeModel(
  bytes: Uint8Array,
  { baseDir = "." }: { baseDir?: string } = {},
): ModelProto {
  let model: ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new ModelIoError(`not an ONNX model: ${(e as Error).message}`);
  }
  const files = new Map<string, Uint8Array>();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataLocation !== 1) continue;
    const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? "", e.value ?? ""]));
    const location = kv.get("location");
    if (!location) {
      throw new ModelIoError(`tensor "${t.name}": external data without a "location" entry`);
    }
    const path = `${baseDir}/${location}`;
    let file = files.get(path);
    if (!file) {
      try {
        file = Deno.readFileSync(path);
      } catch (e) {
        throw new ModelIoError(
          `tensor "${t.name}": cannot read external data file ${path}: ${(e as Error).message}`,
        );
      }
      files.set(path, file);
    }
    const offset = Number(kv.get("offset") ?? "0");
    const length = kv.has("length") ? Number(kv.get("length")) : file.byteLength - offset;
    if (offset + length > file.byteLength) {
      throw new ModelIoError(
        `tensor "${t.name}": external data ${path} has ${file.byteLength} bytes, expected at least ${
          offset + length
        } (offset ${offset} + length ${length})`,
      );
    }
    t.rawData = file.subarray(offset, offset + length);
    t.dataLocation = 0;
    t.externalData = [];
  }
  return model;
}

/**
 * Reads an ONNX model file (external data files resolved next to it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ModelIoError } from "./errors.ts";
 * await assert.rejects(readModel("no/such/vae_decoder.onnx"), ModelIoError);
 * ```
 */
export async function readModel(path: string): Promise<ModelProto> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new ModelIoError(`cannot read model ${path}: ${(e as Error).message}`);
  }
  try {
    return decodeModel(bytes, { baseDir: dirOf(path) });
  } catch (e) {
    if (e instanceof ModelIoError) throw new ModelIoError(`${path}: ${e.message}`);
    throw e;
  }
}

/**
 * Reads an ONNX model file straight into the graph form.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "./graph_builder.ts";
 * const b = new GraphBuilder();
 * b.output(b.node("Relu", [b.input("x", 1, [2])]), 1, [2]);
 * const dir = await Deno.makeTempDir();
 * try {
 *   await writeModel(`${dir}/model.onnx`, b.graph);
 *   const graph = await readGraph(`${dir}/model.onnx`);
 *   assert.deepEqual(graph.nodes.map((n) => n.opType), ["Relu"]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function readGraph(path: string): Promise<Graph> {
  return graphFromModel(await readModel(path));
}

/**
 * Serializes a model (or graph) to bytes with all tensor data embedded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "./graph_builder.ts";
 * const b = new GraphBuilder();
 * b.output(b.node("Relu", [b.input("x", 1, [2])]), 1, [2]);
 * assert.equal(decodeModel(encodeModel(b.graph)).graph?.node?.length, 1);
 * ```
 */
export function encodeModel(model: ModelProto | Graph): Uint8Array {
  const proto = "nodes" in model ? modelFromGraph(model as Graph) : model as ModelProto;
  return onnx.ModelProto.encode(proto).finish();
}

/** Options of {@link writeModel}. */
export interface WriteModelOptions {
  /**
   * File name (relative to the model's directory) for weights stored outside the model;
   * when unset (the default) every tensor is embedded.
   */
  externalData?: string;
  /** Tensors with at least this many bytes go to the external file (default 1024). */
  externalThreshold?: number;
}

/**
 * Writes a model (or graph) atomically; optionally moves large weights to an external data file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "./graph_builder.ts";
 * const b = new GraphBuilder();
 * const x = b.input("x", 1, [1024]);
 * b.output(b.node("Mul", [x, b.constant(1, [1024], new Array(1024).fill(2))]), 1, [1024]);
 * const dir = await Deno.makeTempDir();
 * try {
 *   await writeModel(`${dir}/model.onnx`, b.graph, { externalData: "model.onnx.data" });
 *   assert.equal((await Deno.stat(`${dir}/model.onnx.data`)).size, 4096); // the 4 KiB weight
 *   const again = await readGraph(`${dir}/model.onnx`);
 *   assert.equal([...again.initializers.values()][0].data[0], 2);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function writeModel(
  path: string,
  model: ModelProto | Graph,
  { externalData, externalThreshold = 1024 }: WriteModelOptions = {},
): Promise<void> {
  const proto = "nodes" in model ? modelFromGraph(model as Graph) : model as ModelProto;
  if (externalData) {
    const chunks: Uint8Array[] = [];
    let offset = 0;
    // Copy so that the caller's model keeps its embedded data.
    const copy = onnx.ModelProto.decode(onnx.ModelProto.encode(proto).finish());
    for (const t of copy.graph?.initializer ?? []) {
      const raw = t.rawData;
      if (!raw || raw.byteLength < externalThreshold) continue;
      // Aligned offsets let runtimes map the file directly.
      const pad = (4096 - (offset % 4096)) % 4096;
      if (pad) chunks.push(new Uint8Array(pad));
      offset += pad;
      chunks.push(raw);
      t.externalData = [
        { key: "location", value: externalData },
        { key: "offset", value: String(offset) },
        { key: "length", value: String(raw.byteLength) },
      ];
      t.dataLocation = 1;
      t.rawData = new Uint8Array();
      offset += raw.byteLength;
    }
    const data = new Uint8Array(offset);
    let o = 0;
    for (const c of chunks) {
      data.set(c, o);
      o += c.byteLength;
    }
    await writeFileAtomic(`${dirOf(path)}/${externalData}`, data);
    await writeFileAtomic(path, onnx.ModelProto.encode(copy).finish());
    return;
  }
  await writeFileAtomic(path, onnx.ModelProto.encode(proto).finish());
}

/**
 * The number of a model's default-domain opset.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "./graph_builder.ts";
 * assert.equal(opsetOf(new GraphBuilder({ opset: 13 }).toModel()), 13);
 * ```
 */
export function opsetOf(model: ModelProto): number {
  for (const o of model.opsetImport ?? []) {
    if (!o.domain || o.domain === "ai.onnx") return toNum(o.version);
  }
  return 0;
}
