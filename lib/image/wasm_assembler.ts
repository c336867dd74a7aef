/**
 * A small WebAssembly assembler: the binary encoding (LEB128, vectors, sections), the
 * instructions the PNG unfilter kernel uses, written in the style of the text format's folded
 * expressions (operands first, then the instruction) and named after the text format's
 * mnemonics, and a module of one exported function and one memory. Opcodes follow the core
 * specification and the SIMD proposal's BinarySIMD.md.
 *
 * ```ts
 * import assert from "node:assert/strict";
 * import { add, get, i32 } from "./wasm_assembler.ts";
 * assert.deepEqual(add(get(0), i32(1)), [0x20, 0, 0x41, 1, 0x6a]); // local.get 0; i32.const 1; i32.add
 * ```
 *
 * @module
 */

/**
 * Unsigned LEB128, the encoding of WebAssembly's indices, sizes and counts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(uleb(624485), [0xe5, 0x8e, 0x26]);
 * ```
 */
export function uleb(n: number): number[] {
  const bytes: number[] = [];
  do {
    const low = n & 0x7f;
    n >>>= 7;
    bytes.push(n === 0 ? low : low | 0x80);
  } while (n !== 0);
  return bytes;
}

/**
 * Signed LEB128 (for `i32.const`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(sleb(-123456), [0xc0, 0xbb, 0x78]);
 * ```
 */
export function sleb(n: number): number[] {
  const bytes: number[] = [];
  for (;;) {
    const low = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (low & 0x40) === 0) || (n === -1 && (low & 0x40) !== 0);
    bytes.push(done ? low : low | 0x80);
    if (done) return bytes;
  }
}

/** A vector: its length, then its items. */
export const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const name = (text: string) => vec([...text].map((ch) => [ch.charCodeAt(0)]));
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];

/** Instructions, as the bytes of the code section. */
export type Code = number[];
/** An instruction after its operands, in the style of the text format's folded expressions. */
export const ins = (opcode: Code, ...operands: Code[]): Code => [...operands.flat(), ...opcode];
/** SIMD instructions: the 0xFD prefix, then the opcode as unsigned LEB128. */
const simd = (op: number, ...immediates: number[]): Code => [0xfd, ...uleb(op), ...immediates];
/** Memory operand: log2 of the alignment promised (none here: rows are not aligned), offset 0. */
const MEMARG = [0, 0];

/** Value type i32. */
export const I32 = 0x7f;
/** Value type v128. */
export const V128 = 0x7b;
/** Block type of blocks, loops and ifs that leave nothing on the stack. */
export const EMPTY = 0x40; // block type of blocks, loops and ifs that leave nothing on the stack

// Control and scalar instructions.
export const loop = (...body: Code[]): Code => [0x03, EMPTY, ...body.flat(), 0x0b];
export const ifElse = (condition: Code, then: Code[], otherwise: Code[]): Code =>
  ins([0x04, EMPTY, ...then.flat(), 0x05, ...otherwise.flat(), 0x0b], condition);
export const br = (depth: number): Code => [0x0c, ...uleb(depth)];
export const brIf = (depth: number, condition: Code): Code =>
  ins([0x0d, ...uleb(depth)], condition);
export const get = (local: number): Code => [0x20, ...uleb(local)];
export const set = (local: number, value: Code): Code => ins([0x21, ...uleb(local)], value);
export const i32 = (n: number): Code => [0x41, ...sleb(n)];
export const add = (x: Code, y: Code) => ins([0x6a], x, y);
export const sub = (x: Code, y: Code) => ins([0x6b], x, y);
export const mul = (x: Code, y: Code) => ins([0x6c], x, y);
export const remU = (x: Code, y: Code) => ins([0x70], x, y);
export const both = (x: Code, y: Code) => ins([0x71], x, y); // i32.and, of two conditions here
export const eq = (x: Code, y: Code) => ins([0x46], x, y);
export const ltU = (x: Code, y: Code) => ins([0x49], x, y);
export const leU = (x: Code, y: Code) => ins([0x4d], x, y);
export const geU = (x: Code, y: Code) => ins([0x4f], x, y);
export const load8 = (address: Code) => ins([0x2d, ...MEMARG], address); // i32.load8_u
export const store8 = (address: Code, value: Code) => ins([0x3a, ...MEMARG], address, value);

// SIMD instructions (opcodes from the SIMD proposal's BinarySIMD.md).
export const v128 = (bytes: number[]): Code => simd(0x0c, ...bytes); // v128.const
export const load = (address: Code) => ins(simd(0x00, ...MEMARG), address); // v128.load
export const load8x8 = (address: Code) => ins(simd(0x02, ...MEMARG), address); // 8 bytes → 8 × u16
export const load32Zero = (address: Code) => ins(simd(0x5c, ...MEMARG), address); // 4 bytes, rest 0
export const load64Zero = (address: Code) => ins(simd(0x5d, ...MEMARG), address); // 8 bytes, rest 0
/** v128.load32_lane: 4 bytes from `address` into 32-bit lane `lane` of `into`. */
export const load32Lane = (address: Code, into: Code, lane: number) =>
  ins(simd(0x56, ...MEMARG, lane), address, into);
export const store = (address: Code, value: Code) => ins(simd(0x0b, ...MEMARG), address, value);
/** v128.store32_lane: stores 32-bit lane `lane` of `value`. */
export const store32 = (address: Code, value: Code, lane: number) =>
  ins(simd(0x5a, ...MEMARG, lane), address, value);
/** v128.store64_lane 0: stores the low 8 bytes of `value`. */
export const store64 = (address: Code, value: Code) =>
  ins(simd(0x5b, ...MEMARG, 0), address, value);
/** i8x16.shuffle of `x` with itself: the high 8 bytes copied into the low 8. */
export const highToLow = (x: Code) =>
  ins(simd(0x0d, ...[8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]), x, x);
export const and = (x: Code, y: Code) => ins(simd(0x4e), x, y);
export const add8 = (x: Code, y: Code) => ins(simd(0x6e), x, y); // i8x16.add, modulo 256
/** i8x16.narrow_i16x8_u of `x` with itself: 16-bit lanes (0..255 here) back to bytes. */
export const narrow = (x: Code) => ins(simd(0x66), x, x);
export const widen = (x: Code) => ins(simd(0x89), x); // i16x8.extend_low_i8x16_u
export const add16 = (x: Code, y: Code) => ins(simd(0x8e), x, y);
export const sub16 = (x: Code, y: Code) => ins(simd(0x91), x, y);
export const shr16 = (x: Code, bits: number) => ins(simd(0x8d), x, i32(bits)); // i16x8.shr_u
export const gt16 = (x: Code, y: Code) => ins(simd(0x31), x, y); // i16x8.gt_s
export const min16 = (x: Code, y: Code) => ins(simd(0x96), x, y); // i16x8.min_s
export const max16 = (x: Code, y: Code) => ins(simd(0x98), x, y); // i16x8.max_s
/**
 * Lane select, `x` where `mask` is set, else `y`. Every mask here is a comparison result (each
 * lane all ones or all zeros), for which the relaxed-SIMD `i8x16.relaxed_laneselect` (one
 * blend instruction on x86) is exact; `v128.bitselect` (and, and-not, or) is the portable
 * form.
 */
export type Select = (x: Code, y: Code, mask: Code) => Code;
export const laneselect: Select = (x, y, mask) => ins(simd(0x109), x, y, mask);
export const bitselect: Select = (x, y, mask) => ins(simd(0x52), x, y, mask);

/** Options of {@link functionModule}. */
export interface FunctionModuleOptions {
  /** The name the function is exported under. */
  name: string;
  /** Value types of its parameters (it returns nothing). */
  params: number[];
  /** Its locals beyond the parameters: [count, value type] runs. */
  locals: [number, number][];
  /** Its body, without the final `end`. */
  body: Code;
}

/**
 * A module of one function, exported under `name`, and one memory of one page to start with
 * (no maximum), exported as `memory`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = functionModule({
 *   name: "poke",
 *   params: [I32, I32],
 *   locals: [],
 *   body: store8(get(0), get(1)),
 * });
 * const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes));
 * (exports.poke as (at: number, value: number) => void)(3, 42);
 * assert.equal(new Uint8Array((exports.memory as WebAssembly.Memory).buffer)[3], 42);
 * ```
 */
export function functionModule(
  { name: exported, params, locals, body }: FunctionModuleOptions,
): Uint8Array<ArrayBuffer> {
  const code = [...vec(locals.map(([n, type]) => [...uleb(n), type])), ...body];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
    ...section(1, vec([[0x60, ...vec(params.map((t) => [t])), ...vec([])]])), // params → ()
    ...section(3, vec([uleb(0)])), // function 0 has type 0
    ...section(5, vec([[0x00, ...uleb(1)]])), // memory: 1 page to start with, no maximum
    ...section(7, vec([[...name(exported), 0x00, 0], [...name("memory"), 0x02, 0]])),
    ...section(10, vec([[...uleb(code.length + 1), ...code, 0x0b]])),
  ]);
}
