/**
 * The builder the walk hands to one rule: it emits into the gradient graph and answers, for the
 * rule's own node only, what shape inference and folding know about its values.
 *
 * @module
 */
import { GraphError } from "../errors.ts";
import { describeNode, type Node } from "../graph.ts";
import type { AttrInput, GraphBuilder } from "../graph_builder.ts";
import type { ShapeMap } from "../shape_inference.ts";
import { DataType, type HostTensor, isFloatType } from "../tensor.ts";
import type { RuleBuilder } from "./rule.ts";

/**
 * A {@link RuleBuilder} bound to one node of the graph `b` extends.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../graph_builder.ts";
 * import { inferShapes } from "../shape_inference.ts";
 * const b = new GraphBuilder();
 * const x = b.input("x", 1, [2, 3]);
 * b.node("Relu", [x]);
 * const node = b.graph.nodes[0];
 * const rb = new NodeRuleBuilder(b, node, [true], inferShapes(b.graph, { x: [2, 3] }));
 * assert.deepEqual(rb.shape(node.outputs[0]), [2, 3]);
 * assert.throws(() => rb.shape("elsewhere"), /not one of its inputs or outputs/);
 * ```
 */
export class NodeRuleBuilder implements RuleBuilder {
  readonly #b: GraphBuilder;
  readonly #node: Node;
  readonly #shapes: ShapeMap;
  readonly #own: Set<string>;
  readonly #float: number;
  readonly needs: readonly boolean[];

  constructor(b: GraphBuilder, node: Node, needs: readonly boolean[], shapes: ShapeMap) {
    this.#b = b;
    this.#node = node;
    this.#shapes = shapes;
    this.#own = new Set([...node.inputs, ...node.outputs].filter((x) => x !== ""));
    this.needs = needs;
    const t = shapes.get(node.outputs[0])?.dtype ?? 0;
    this.#float = isFloatType(t) ? t : DataType.FLOAT;
  }

  get opset(): number {
    return this.#b.opset;
  }

  #ownValue(name: string): void {
    if (!this.#own.has(name)) {
      throw new GraphError(
        `${describeNode(this.#node)}: its rule asked about "${name}", which is not one of its ` +
          `inputs or outputs`,
      );
    }
  }

  shape(name: string): number[] {
    this.#ownValue(name);
    const t = this.#shapes.get(name);
    if (!t) throw new GraphError(`${describeNode(this.#node)}: value "${name}" has no known shape`);
    return t.dims;
  }

  dtype(name: string): number {
    this.#ownValue(name);
    return this.#shapes.get(name)?.dtype ?? 0;
  }

  value(name: string): HostTensor | undefined {
    this.#ownValue(name);
    return this.#b.graph.initializers.get(name);
  }

  op(type: string, inputs: string[], attrs: Record<string, AttrInput | undefined> = {}): string {
    return this.#b.node(type, inputs, attrs, { name: `grad_${type}` });
  }

  scalar(value: number): string {
    return this.#b.scalar(value, this.#float);
  }

  constant(dims: number[], values: ArrayLike<number>, hint?: string): string {
    return this.#b.constant(this.#float, dims, values, hint);
  }

  int64s(values: number[]): string {
    return this.#b.int64s(values);
  }

  initializer(tensor: HostTensor, hint: string): string {
    return this.#b.initializer(tensor, hint);
  }

  forwardOutput(index: number, hint: string): string {
    const node = this.#node;
    if (!node.outputs[index]) {
      if (!this.#b.graph.nodes.includes(node)) {
        throw new GraphError(
          `${describeNode(node)}: output ${index} was asked of a node that is not in the graph`,
        );
      }
      while (node.outputs.length < index) node.outputs.push("");
      node.outputs[index] = this.#b.fresh(`${node.name}_${hint}`);
      this.#own.add(node.outputs[index]);
    }
    return node.outputs[index];
  }
}
