/**
 * Named errors raised by the ONNX library.
 *
 * @module
 */

/** A model file or tensor could not be read or written. */
export class ModelIoError extends Error {
  override readonly name = "ModelIoError";
}

/** A value's shape cannot be inferred or does not match what was requested. */
export class ShapeError extends Error {
  override readonly name = "ShapeError";
}

/** A graph uses an op (or an op variant) for which no gradient rule exists. */
export class UnsupportedOpError extends Error {
  override readonly name = "UnsupportedOpError";
}

/** A graph is malformed (dangling value, cycle, missing input). */
export class GraphError extends Error {
  override readonly name = "GraphError";
}

/** No execution provider from the requested list could open the model. */
export class SessionError extends Error {
  override readonly name = "SessionError";
}
