/**
 * Reverses PNG scanline filtering (PNG specification, section 7.3 and chapter 9: filter types
 * 0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth) once the zlib stream has been inflated.
 *
 * The work is done by a small WebAssembly module with SIMD128 that is assembled below, at module
 * load, from its instructions; there is no binary blob to trust. Up and None rows go 16 bytes
 * at a time. Sub, Average and Paeth depend on the pixel to the left, so those rows go one pixel
 * at a time with the pixel's channels in the lanes of one vector and the previous output pixel
 * kept in a register; two consecutive Paeth rows of 3- or 4-byte pixels (most rows of a typical
 * RGB or RGBA PNG) go together, one in each half of the vector. Where the engine has no
 * WebAssembly SIMD the same work is done in plain JavaScript ({@linkcode unfilterScanlinesJs}),
 * which is also the reference the tests compare against.
 *
 * On a 1024×1024 RGB image of mostly Paeth rows this takes about 2 ms, against about 16 ms in
 * plain JavaScript. The first call in a process runs V8's baseline code and takes several
 * times as long; the optimised code is in place from the next call on.
 *
 * @module
 */

/**
 * Raised when a scanline has a filter type other than 0–4; the message names the row (0-based)
 * and the value found.
 */
export class PngFilterError extends Error {
  override readonly name = "PngFilterError";
}

/**
 * Reverses PNG filtering. `filtered` holds `height` scanlines, each one filter-type byte followed
 * by `stride` bytes (length must be height*(stride+1), else a RangeError names expected vs
 * found). `bpp` is bytes per complete pixel, 1..8 (1 for bit depths below 8). Returns a new
 * Uint8Array of height*stride bytes.
 *
 * @throws {PngFilterError} when a scanline's filter type is not 0–4.
 * @throws {RangeError} when the arguments do not describe `filtered`.
 *
 * @example
 * ```ts
 * // 2×1 RGB, Sub-filtered: the second pixel is stored as its difference to the first.
 * const rgb = unfilterScanlines(new Uint8Array([1, 10, 20, 30, 1, 2, 3]), 1, 6, 3);
 * // rgb: 10 20 30 11 22 33
 * ```
 */
export function unfilterScanlines(
  filtered: Uint8Array,
  height: number,
  stride: number,
  bpp: number,
): Uint8Array {
  checkArguments(filtered, height, stride, bpp);
  const out = new Uint8Array(height * stride);
  unfilterChecked(filtered, height, stride, bpp, out);
  return out;
}

/** Which implementation {@linkcode unfilterScanlines} uses in this process. */
export function unfilterBackend(): "wasm-simd" | "js" {
  return wasmModule === undefined ? "js" : "wasm-simd";
}

/**
 * The plain JavaScript implementation, used where WebAssembly SIMD is not available and for
 * images too large for a 32-bit WebAssembly memory. Same contract as
 * {@linkcode unfilterScanlines}; written to follow the specification closely, so it also serves
 * as the reference the WebAssembly code is tested against.
 */
export function unfilterScanlinesJs(
  filtered: Uint8Array,
  height: number,
  stride: number,
  bpp: number,
): Uint8Array {
  checkArguments(filtered, height, stride, bpp);
  const out = new Uint8Array(height * stride);
  unfilterJs(filtered, height, stride, bpp, out);
  return out;
}

function checkArguments(filtered: Uint8Array, height: number, stride: number, bpp: number) {
  if (!Number.isSafeInteger(height) || height < 0) {
    throw new RangeError(`height must be a non-negative integer, got ${height}`);
  }
  if (!Number.isSafeInteger(stride) || stride < 0) {
    throw new RangeError(`stride must be a non-negative integer, got ${stride}`);
  }
  if (!Number.isInteger(bpp) || bpp < 1 || bpp > 8) {
    throw new RangeError(`bpp must be an integer from 1 to 8, got ${bpp}`);
  }
  const expected = height * (stride + 1);
  if (filtered.length !== expected) {
    throw new RangeError(
      `expected ${expected} bytes of filtered scanlines (${height} rows of 1 + ${stride}), ` +
        `found ${filtered.length}`,
    );
  }
  for (let row = 0, at = 0; row < height; row++, at += stride + 1) {
    if (filtered[at] > 4) {
      throw new PngFilterError(
        `scanline ${row} has filter type ${filtered[at]}; PNG defines 0 to 4`,
      );
    }
  }
}

/** Unfilters arguments that {@linkcode checkArguments} accepted into `out`. */
function unfilterChecked(
  filtered: Uint8Array,
  height: number,
  stride: number,
  bpp: number,
  out: Uint8Array,
) {
  if (out.length === 0) return;
  const { outAt, inAt, bytes } = layout(filtered.length, height, stride);
  const kernel = wasmModule && kernelFor(bytes);
  if (kernel === undefined) {
    unfilterJs(filtered, height, stride, bpp, out);
    return;
  }
  const memory = new Uint8Array(kernel.memory.buffer);
  memory.fill(0, outAt - stride, outAt); // the all-zero row above the first one
  memory.set(filtered, inAt);
  kernel.unfilter(inAt, outAt, height, stride, bpp);
  out.set(memory.subarray(outAt, outAt + out.length));
}

// ---------------------------------------------------------------------------------------------
// Plain JavaScript

function unfilterJs(
  filtered: Uint8Array,
  height: number,
  stride: number,
  bpp: number,
  out: Uint8Array,
) {
  const zeroRow = new Uint8Array(stride); // the prior row of the first row
  const first = Math.min(bpp, stride); // bytes with no pixel to their left
  for (let row = 0; row < height; row++) {
    const at = row * (stride + 1);
    const type = filtered[at];
    const x = filtered.subarray(at + 1, at + 1 + stride);
    const line = out.subarray(row * stride, (row + 1) * stride);
    const prior = row === 0 ? zeroRow : out.subarray((row - 1) * stride, row * stride);
    // Writes through a Uint8Array wrap modulo 256, as the specification's additions do.
    switch (type) {
      case 0:
        line.set(x);
        break;
      case 1:
        for (let i = 0; i < first; i++) line[i] = x[i];
        for (let i = first; i < stride; i++) line[i] = x[i] + line[i - bpp];
        break;
      case 2:
        for (let i = 0; i < stride; i++) line[i] = x[i] + prior[i];
        break;
      case 3:
        for (let i = 0; i < first; i++) line[i] = x[i] + (prior[i] >> 1);
        for (let i = first; i < stride; i++) line[i] = x[i] + ((line[i - bpp] + prior[i]) >> 1);
        break;
      case 4:
        for (let i = 0; i < first; i++) line[i] = x[i] + prior[i];
        for (let i = first; i < stride; i++) {
          // The specification's predictor, with p = a + b - c substituted as libpng does.
          const a = line[i - bpp];
          const b = prior[i];
          const c = prior[i - bpp];
          const pa = Math.abs(b - c); // |p - a|
          const pb = Math.abs(a - c); // |p - b|
          const pc = Math.abs(a + b - c - c); // |p - c|
          line[i] = x[i] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
        }
        break;
      default:
        throw new PngFilterError(`scanline ${row} has filter type ${type}; PNG defines 0 to 4`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// WebAssembly: memory layout and instances

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
  } catch {
    return undefined; // out of memory for a very large image: plain JavaScript manages
  }
}

function instantiate(): Kernel {
  const exports = new WebAssembly.Instance(wasmModule!).exports;
  return {
    memory: exports.memory as WebAssembly.Memory,
    unfilter: exports.unfilter as Kernel["unfilter"],
  };
}

// ---------------------------------------------------------------------------------------------
// WebAssembly: the module, assembled from its instructions

/** Unsigned LEB128. */
function uleb(n: number): number[] {
  const bytes: number[] = [];
  do {
    const low = n & 0x7f;
    n >>>= 7;
    bytes.push(n === 0 ? low : low | 0x80);
  } while (n !== 0);
  return bytes;
}

/** Signed LEB128 (for `i32.const`). */
function sleb(n: number): number[] {
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
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const name = (text: string) => vec([...text].map((ch) => [ch.charCodeAt(0)]));
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];

type Code = number[];
/** An instruction after its operands, in the style of the text format's folded expressions. */
const ins = (opcode: Code, ...operands: Code[]): Code => [...operands.flat(), ...opcode];
/** SIMD instructions: the 0xFD prefix, then the opcode as unsigned LEB128. */
const simd = (op: number, ...immediates: number[]): Code => [0xfd, ...uleb(op), ...immediates];
/** Memory operand: log2 of the alignment promised (none here: rows are not aligned), offset 0. */
const MEMARG = [0, 0];

const I32 = 0x7f;
const V128 = 0x7b;
const EMPTY = 0x40; // block type of blocks, loops and ifs that leave nothing on the stack

// Control and scalar instructions.
const loop = (...body: Code[]): Code => [0x03, EMPTY, ...body.flat(), 0x0b];
const ifElse = (condition: Code, then: Code[], otherwise: Code[]): Code =>
  ins([0x04, EMPTY, ...then.flat(), 0x05, ...otherwise.flat(), 0x0b], condition);
const br = (depth: number): Code => [0x0c, ...uleb(depth)];
const brIf = (depth: number, condition: Code): Code => ins([0x0d, ...uleb(depth)], condition);
const get = (local: number): Code => [0x20, ...uleb(local)];
const set = (local: number, value: Code): Code => ins([0x21, ...uleb(local)], value);
const i32 = (n: number): Code => [0x41, ...sleb(n)];
const add = (x: Code, y: Code) => ins([0x6a], x, y);
const sub = (x: Code, y: Code) => ins([0x6b], x, y);
const mul = (x: Code, y: Code) => ins([0x6c], x, y);
const remU = (x: Code, y: Code) => ins([0x70], x, y);
const both = (x: Code, y: Code) => ins([0x71], x, y); // i32.and, of two conditions here
const eq = (x: Code, y: Code) => ins([0x46], x, y);
const ltU = (x: Code, y: Code) => ins([0x49], x, y);
const leU = (x: Code, y: Code) => ins([0x4d], x, y);
const geU = (x: Code, y: Code) => ins([0x4f], x, y);
const load8 = (address: Code) => ins([0x2d, ...MEMARG], address); // i32.load8_u
const store8 = (address: Code, value: Code) => ins([0x3a, ...MEMARG], address, value);

// SIMD instructions (opcodes from the SIMD proposal's BinarySIMD.md).
const v128 = (bytes: number[]): Code => simd(0x0c, ...bytes); // v128.const
const load = (address: Code) => ins(simd(0x00, ...MEMARG), address); // v128.load
const load8x8 = (address: Code) => ins(simd(0x02, ...MEMARG), address); // 8 bytes → 8 × u16
const load32Zero = (address: Code) => ins(simd(0x5c, ...MEMARG), address); // 4 bytes, rest 0
const load64Zero = (address: Code) => ins(simd(0x5d, ...MEMARG), address); // 8 bytes, rest 0
/** v128.load32_lane: 4 bytes from `address` into 32-bit lane `lane` of `into`. */
const load32Lane = (address: Code, into: Code, lane: number) =>
  ins(simd(0x56, ...MEMARG, lane), address, into);
const store = (address: Code, value: Code) => ins(simd(0x0b, ...MEMARG), address, value);
/** v128.store32_lane: stores 32-bit lane `lane` of `value`. */
const store32 = (address: Code, value: Code, lane: number) =>
  ins(simd(0x5a, ...MEMARG, lane), address, value);
/** v128.store64_lane 0: stores the low 8 bytes of `value`. */
const store64 = (address: Code, value: Code) => ins(simd(0x5b, ...MEMARG, 0), address, value);
/** i8x16.shuffle of `x` with itself: the high 8 bytes copied into the low 8. */
const highToLow = (x: Code) =>
  ins(simd(0x0d, ...[8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]), x, x);
const and = (x: Code, y: Code) => ins(simd(0x4e), x, y);
const add8 = (x: Code, y: Code) => ins(simd(0x6e), x, y); // i8x16.add, modulo 256
/** i8x16.narrow_i16x8_u of `x` with itself: 16-bit lanes (0..255 here) back to bytes. */
const narrow = (x: Code) => ins(simd(0x66), x, x);
const widen = (x: Code) => ins(simd(0x89), x); // i16x8.extend_low_i8x16_u
const add16 = (x: Code, y: Code) => ins(simd(0x8e), x, y);
const sub16 = (x: Code, y: Code) => ins(simd(0x91), x, y);
const shr16 = (x: Code, bits: number) => ins(simd(0x8d), x, i32(bits)); // i16x8.shr_u
const gt16 = (x: Code, y: Code) => ins(simd(0x31), x, y); // i16x8.gt_s
const min16 = (x: Code, y: Code) => ins(simd(0x96), x, y); // i16x8.min_s
const max16 = (x: Code, y: Code) => ins(simd(0x98), x, y); // i16x8.max_s
/**
 * Lane select, `x` where `mask` is set, else `y`. Every mask here is a comparison result (each
 * lane all ones or all zeros), for which the relaxed-SIMD `i8x16.relaxed_laneselect` (one
 * blend instruction on x86) is exact; `v128.bitselect` (and, and-not, or) is the portable
 * form.
 */
type Select = (x: Code, y: Code, mask: Code) => Code;
const laneselect: Select = (x, y, mask) => ins(simd(0x109), x, y, mask);
const bitselect: Select = (x, y, mask) => ins(simd(0x52), x, y, mask);

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
const LOCALS = [[4, I32], [7, V128]];

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

function moduleBytes(select: Select): Uint8Array<ArrayBuffer> {
  const body = [...vec(LOCALS.map(([n, type]) => [...uleb(n), type])), ...unfilterBody(select)];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
    ...section(1, vec([[0x60, ...vec(Array(5).fill([I32])), ...vec([])]])), // (5 × i32) → ()
    ...section(3, vec([uleb(0)])), // function 0 has type 0
    ...section(5, vec([[0x00, ...uleb(1)]])), // memory: 1 page to start with, no maximum
    ...section(7, vec([[...name("unfilter"), 0x00, 0], [...name("memory"), 0x02, 0]])),
    ...section(10, vec([[...uleb(body.length + 1), ...body, 0x0b]])),
  ]);
}

/**
 * The compiled module: with relaxed SIMD where the engine has it, else with SIMD alone, else
 * `undefined` (no WebAssembly SIMD: plain JavaScript does the work).
 */
const wasmModule: WebAssembly.Module | undefined = (() => {
  for (const select of [laneselect, bitselect]) {
    try {
      return new WebAssembly.Module(moduleBytes(select));
    } catch {
      // not supported here; try the next
    }
  }
  return undefined;
})();
