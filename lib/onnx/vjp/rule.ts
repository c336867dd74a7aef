/**
 * The contract between the reverse walk (`../vjp.ts`) and the gradient rules of this folder: a
 * rule maps the gradients arriving at one node's outputs to the gradients of its inputs, and
 * sees only that node and a {@link RuleBuilder} bound to it. A fusion rewrites the list of nodes
 * the walk differentiates before the walk starts, so that no rule needs to look at a neighbour.
 *
 * @module
 */
import type { Node } from "../graph.ts";
import type { AttrInput } from "../graph_builder.ts";
import type { ShapeContext } from "../shape_inference.ts";
import type { HostTensor } from "../tensor.ts";

/**
 * What a rule emits through: nodes and constants in the gradient graph, and what is known of its
 * own node's inputs and outputs (shape, element type, constant value). Asking about any other
 * value is an error: a rule reads only its own node.
 */
export interface RuleBuilder extends ShapeContext {
  /** Which of the node's inputs need a gradient (float values on a path from `wrt`). */
  readonly needs: readonly boolean[];
  /** Emits one node (named `grad_<type>`) and returns its first output. */
  op(type: string, inputs: string[], attrs?: Record<string, AttrInput | undefined>): string;
  /** A scalar of the node's float type (float32 when its output is not a float). */
  scalar(value: number): string;
  /** A constant of the node's float type. */
  constant(dims: number[], values: ArrayLike<number>, hint?: string): string;
  /** A 1-D int64 constant (shapes, axes, pads, slice bounds). */
  int64s(values: number[]): string;
  /** A constant tensor given whole (a host-side transform of a weight). */
  initializer(tensor: HostTensor, hint: string): string;
  /**
   * The forward node's optional output `index` (MaxPool's indices), which the forward node is
   * made to produce when it does not yet; `hint` names the new value.
   */
  forwardOutput(index: number, hint: string): string;
}

/** Gradient value of each output of a node; undefined where no gradient reaches an output. */
export type OutputGradients = readonly (string | undefined)[];

/**
 * A VJP rule: (output gradients, node) → one gradient value per input, undefined where the
 * builder's `needs` says none is needed. Pure: everything it adds goes through the builder.
 */
export type VjpRule = (gy: OutputGradients, node: Node, b: RuleBuilder) => (string | undefined)[];

/**
 * A graph pass run before the walk: takes the forward nodes in order and returns the nodes to
 * differentiate, where a group of nodes may stand as one node of an op that has its own rule
 * (a fused op, which exists only there). Nodes it leaves alone must be returned as the same
 * objects: the walk may ask them for an optional output.
 */
export type VjpFusion = (nodes: readonly Node[]) => Node[];
