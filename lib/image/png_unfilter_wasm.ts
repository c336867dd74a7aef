/**
 * The WebAssembly SIMD kernel that reverses PNG filtering (see `png_unfilter.ts` for what it
 * computes and how fast): its program, written with `wasm_assembler.ts`, compiled at module
 * load (with relaxed SIMD where the engine has it), and the instances that run it. Up and None
 * rows go 16 bytes at a time. Sub, Average and Paeth depend on the pixel to the left, so those
 * rows go one pixel at a time with the pixel's channels in the lanes of one vector and the
 * previous output pixel kept in a register; two consecutive Paeth rows of 3- or 4-byte pixels
 * (most rows of a typical RGB or RGBA PNG) go together, one in each half of the vector.
 *
 * @module
 */
import {
  add,
  add16,
  add8,
  and,
  bitselect,
  both,
  br,
  brIf,
  type Code,
  EMPTY,
  eq,
  functionModule,
  get,
  geU,
  gt16,
  highToLow,
  I32,
  i32,
  ifElse,
  ins,
  laneselect,
  leU,
  load,
  load32Lane,
  load32Zero,
  load64Zero,
  load8,
  load8x8,
  loop,
  ltU,
  max16,
  min16,
  mul,
  narrow,
  remU,
  type Select,
  set,
  shr16,
  store,
  store32,
  store64,
  store8,
  sub,
  sub16,
  uleb,
  V128,
  v128,
  vec,
  widen,
} from "./wasm_assembler.ts";

/**
 * Whether this engine runs the kernel (it has WebAssembly SIMD).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(typeof wasmUnfilterAvailable(), "boolean");
 * ```
 */
export function wasmUnfilterAvailable(): boolean {
  return wasmModule !== undefined;
}

// ---------------------------------------------------------------------------------------------
// Memory layout and instances

/**
 * Where the kernel's memory holds the rows: an all-zero row (the one above the first), the
 * output rows, 16 bytes of slack, the filtered rows and 16 more bytes of slack. Loads and stores
 * run up to 15 bytes past the end of a row (a whole vector or pixel at a time); past the last
 * row they land in the slack.
 */
function layout(filteredLength: number, height: number, stride: number) {
  const align = (n: number) => Math.ceil(n / 16) * 16;
  const outAt = align(Math.max(stride, 16));
  const inAt = align(outAt + height * stride + 16);
  return { outAt, inAt, bytes: inAt + filteredLength + 16 };
}

interface Kernel {
  memory: WebAssembly.Memory;
  unfilter: (inAt: number, outAt: number, height: number, stride: number, bpp: number) => void;
}

const PAGE = 65536;
/**
 * The instance kept between calls grows to the largest image it served, up to this; images
 * needing more memory get an instance of their own, freed after the call.
 */
const KEEP_BYTES = 64 << 20;
/** A 32-bit memory is at most 4 GiB. */
const MAX_PAGES = 65536;

let cached: Kernel | undefined;

/** An instance with at least `bytes` of memory, or `undefined` when none can be had. */
function kernelFor(bytes: number): Kernel | undefined {
  const pages = Math.ceil(bytes / PAGE);
  if (pages > MAX_PAGES) return undefined;
  try {
    const kernel = bytes <= KEEP_BYTES ? (cached ??= instantiate()) : instantiate();
    const missing = pages - kernel.memory.buffer.byteLength / PAGE;
    if (missing > 0) kernel.memory.grow(missing);
    return kernel;
  } catch (e) {
    // The engine could not give a very large image its memory (grow and instantiation raise a
    // RangeError): plain JavaScript manages without.
    if (e instanceof RangeError) return undefined;
    throw e;
  }
}

function instantiate(): Kernel {
  const exports = new WebAssembly.Instance(wasmModule!).exports;
  return {
    memory: exports.memory as WebAssembly.Memory,
    unfilter: exports.unfilter as Kernel["unfilter"],
  };
}

/**
 * Unfilters checked arguments (`filtered` holds `height` rows of a filter-type byte 0–4 and
 * `stride` bytes) into `out`; false, with `out` untouched, when the kernel cannot take them
 * (no WebAssembly SIMD, or an image too large for its memory).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const out = new Uint8Array(6);
 * if (unfilterWasm(new Uint8Array([1, 10, 20, 30, 1, 2, 3]), 1, 6, 3, out)) {
 *   assert.deepEqual([...out], [10, 20, 30, 11, 22, 33]);
 * }
 * ```
 */
export function unfilterWasm(
  filtered: Uint8Array,
  height: number,
  stride: number,
  bpp: number,
  out: Uint8Array,
): boolean {
  const { outAt, inAt, bytes } = layout(filtered.length, height, stride);
  const kernel = wasmModule && kernelFor(bytes);
  if (kernel === undefined) return false;
  const memory = new Uint8Array(kernel.memory.buffer);
  memory.fill(0, outAt - stride, outAt); // the all-zero row above the first one
  memory.set(filtered, inAt);
  kernel.unfilter(inAt, outAt, height, stride, bpp);
  out.set(memory.subarray(outAt, outAt + out.length));
  return true;
}

// ---------------------------------------------------------------------------------------------
// The program

const ZERO = v128(Array(16).fill(0));
/** 0x00ff in every 16-bit lane. */
const LOW_BYTES_MASK = v128(Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? 0xff : 0)));
/** The low four 16-bit lanes. */
const LOW_HALF_MASK = v128(Array.from({ length: 16 }, (_, i) => (i < 8 ? 0xff : 0)));

// The function's parameters and locals.
const IN = 0; // the current row's filter-type byte, its filtered bytes follow
const OUT = 1; // the current output row; the prior row is at OUT - STRIDE
const ROWS = 2; // rows left, counting the current one
const STRIDE = 3;
const BPP = 4;
const END = 5; // end of the current output row
const P = 6; // the output position in the row
const DELTA = 7; // P + DELTA is the filtered byte that becomes the output byte at P
const Q = 8; // Paeth row pairs: the output position in the second row
const A = 9; // the output pixel to the left (16-bit lanes, except for Sub: 8-bit)
const B = 10; // the pixel above
const C = 11; // the pixel above and to the left
const T = 12; // Paeth: the threshold below
const LO = 13;
const HI = 14;
const LOW_BYTES = 15; // LOW_BYTES_MASK
const LOCALS: [number, number][] = [[4, I32], [7, V128]];

const filteredAt = (p: Code) => add(p, get(DELTA));
const priorAt = (p: Code) => sub(p, get(STRIDE));

/** `P` from where it is to `end` (a local), `step` bytes at a time, at least once. */
const steps = (end: number, step: Code, ...body: Code[]) =>
  loop(...body, set(P, add(get(P), step)), brIf(0, ltU(get(P), get(end))));
/**
 * Pixels from `P` to `end`. A pixel is stored as 8 bytes, of which the bytes past its `bpp`
 * land on the pixels to its right (stored later, so overwritten) or past the row's end (the
 * next row, not yet written, or the slack after the last row).
 */
const pixels = (end: number, ...body: Code[]) => steps(end, get(BPP), ...body);
/** The 16-bit lanes, back to bytes, stored as the pixel at `P`. */
const storePixel = (lanes: Code) => store64(get(P), narrow(lanes));

/**
 * Paeth: x + whichever of a, b, c is nearest to a + b - c (ties: a, then b). Computed as in
 * stb_image, which keeps the dependency on `a` (the previous result) short: with
 * t = 3c - b - a, lo = min(a, b) and hi = max(a, b), the predictor is hi if t <= lo, else c
 * if hi > t, else lo. The tests check this against the specification's form. Takes `A` and
 * `C`, leaves the result in `A` and the pixel above in `C`, for the next pixel.
 */
const paeth = (select: Select, x: Code, b: Code): Code => [
  ...set(B, b),
  ...set(T, sub16(sub16(add16(get(C), add16(get(C), get(C))), get(B)), get(A))),
  ...set(LO, min16(get(A), get(B))),
  ...set(HI, max16(get(A), get(B))),
  ...set(
    A,
    and(
      add16(
        x,
        select(select(get(C), get(LO), gt16(get(HI), get(T))), get(HI), gt16(get(T), get(LO))),
      ),
      get(LOW_BYTES),
    ),
  ),
  ...set(C, get(B)),
];
const paethPixel = (select: Select) => [
  ...paeth(select, load8x8(filteredAt(get(P))), load8x8(priorAt(get(P)))),
  ...storePixel(get(A)),
];

/**
 * How far the second row of a Paeth pair trails the first, in pixels. Its pixel above must
 * have been stored by then; a few iterations give the store time to reach the cache, so that
 * the load does not wait on it.
 */
const LAG = 16;

/**
 * Two Paeth rows at once, for 3- and 4-byte pixels: the chain of dependent instructions from
 * one pixel to the next is what limits a Paeth row, and two rows make independent chains when
 * the second trails the first. The low four lanes hold a pixel of the first row, the high four
 * one `LAG` pixels further left in the second. The first row's first `LAG` pixels are done
 * alone beforehand, the second row's last `LAG` afterwards.
 *
 * Pixels are stored 4 bytes at a time; with 3-byte pixels the first row's last pixel puts one
 * byte on the second row's first, which is rewritten at the end (its predictor is the byte
 * above).
 */
const paethPair = (select: Select): Code => [
  ...set(Q, add(get(OUT), mul(get(BPP), i32(LAG)))),
  ...pixels(Q, paethPixel(select)),
  ...set(A, and(get(A), LOW_HALF_MASK)),
  ...set(C, and(get(C), LOW_HALF_MASK)),
  ...set(Q, get(END)),
  ...loop(
    paeth(
      select,
      widen(load32Lane(add(filteredAt(get(Q)), i32(1)), load32Zero(filteredAt(get(P))), 1)),
      widen(load32Lane(priorAt(get(Q)), load32Zero(priorAt(get(P))), 1)),
    ),
    set(T, narrow(get(A))), // T is free again: the two pixels as bytes
    store32(get(P), get(T), 0),
    store32(get(Q), get(T), 1),
    set(Q, add(get(Q), get(BPP))),
    set(P, add(get(P), get(BPP))),
    brIf(0, ltU(get(P), get(END))),
  ),
  // On to the second row alone.
  ...set(A, highToLow(get(A))),
  ...set(C, highToLow(get(C))),
  ...set(P, get(Q)),
  ...set(END, add(get(END), get(STRIDE))),
  ...set(DELTA, add(get(DELTA), i32(1))), // past one more filter-type byte
  ...pixels(END, paethPixel(select)),
  ...store8(
    add(get(OUT), get(STRIDE)),
    add(load8(filteredAt(add(get(OUT), get(STRIDE)))), load8(get(OUT))),
  ),
  // The second row is done too.
  ...set(IN, add(get(IN), add(get(STRIDE), i32(1)))),
  ...set(ROWS, sub(get(ROWS), i32(1))),
];
/** Whether the current row and the next make a Paeth pair. */
const PAETH_PAIR = both(
  both(leU(sub(get(BPP), i32(3)), i32(1)), geU(get(ROWS), i32(2))),
  both(
    eq(load8(add(get(IN), add(get(STRIDE), i32(1)))), i32(4)),
    both(
      geU(get(STRIDE), mul(get(BPP), i32(LAG + 1))),
      eq(remU(get(STRIDE), get(BPP)), i32(0)),
    ),
  ),
);

/** The code for a row of each filter type, in the order of their numbers. */
const rowCode = (select: Select): Code[] => [
  // 0 None: a copy.
  steps(END, i32(16), store(get(P), load(filteredAt(get(P))))),
  // 1 Sub: x + a, bytewise.
  [
    ...set(A, ZERO),
    ...pixels(END, set(A, add8(get(A), load64Zero(filteredAt(get(P))))), store64(get(P), get(A))),
  ],
  // 2 Up: x + b, 16 bytes at a time.
  steps(END, i32(16), store(get(P), add8(load(filteredAt(get(P))), load(priorAt(get(P)))))),
  // 3 Average: x + floor((a + b) / 2), in 16-bit lanes so a + b does not overflow.
  [
    ...set(A, ZERO),
    ...pixels(
      END,
      set(
        A,
        and(
          add16(load8x8(filteredAt(get(P))), shr16(add16(get(A), load8x8(priorAt(get(P)))), 1)),
          get(LOW_BYTES),
        ),
      ),
      storePixel(get(A)),
    ),
  ],
  // 4 Paeth, one row or two.
  [
    ...set(A, ZERO),
    ...set(C, ZERO),
    ...ifElse(PAETH_PAIR, [paethPair(select)], [pixels(END, paethPixel(select))]),
  ],
];

/**
 * `unfilter(in, out, height, stride, bpp)`: rows one after another, each dispatched on its
 * filter type with `br_table` into five nested blocks. Filter types above 4 are rejected
 * before the call; the table sends them to the end of the row, untouched.
 */
const unfilterBody = (select: Select): Code => [
  ...set(LOW_BYTES, LOW_BYTES_MASK),
  ...loop(
    set(END, add(get(OUT), get(STRIDE))),
    set(DELTA, sub(add(get(IN), i32(1)), get(OUT))),
    set(P, get(OUT)),
    // Blocks for the end of the row ($next), then the five filter types, innermost None.
    Array(6).fill([0x02, EMPTY]).flat(),
    ins([0x0e, ...vec([0, 1, 2, 3, 4].map(uleb)), ...uleb(5)], load8(get(IN))),
    // Closing the block of type i leads to its row code, which then jumps to $next; from
    // there $next is 4 - i blocks out. Paeth's row code simply falls through to $next.
    ...rowCode(select).map((code, i) => [0x0b, ...code, ...(i < 4 ? br(4 - i) : [])]),
    [0x0b],
    set(IN, add(get(IN), add(get(STRIDE), i32(1)))),
    set(OUT, get(END)),
    set(ROWS, sub(get(ROWS), i32(1))),
    brIf(0, get(ROWS)),
  ),
];

// ---------------------------------------------------------------------------------------------
// Compiled at module load, once the program above is defined

function moduleBytes(select: Select): Uint8Array<ArrayBuffer> {
  return functionModule({
    name: "unfilter",
    params: Array(5).fill(I32),
    locals: LOCALS,
    body: unfilterBody(select),
  });
}

/**
 * The compiled module: with relaxed SIMD where the engine has it, else with SIMD alone, else
 * `undefined` (no WebAssembly SIMD: plain JavaScript does the work).
 */
const wasmModule: WebAssembly.Module | undefined = (() => {
  for (const select of [laneselect, bitselect]) {
    try {
      return new WebAssembly.Module(moduleBytes(select));
    } catch (e) {
      // An engine without (relaxed) SIMD rejects the module: try the next form, then none.
      if (!(e instanceof WebAssembly.CompileError)) throw e;
    }
  }
  return undefined;
})();
