/**
 * A model of glibc's malloc as far as the memory a process holds goes, for the memory estimate
 * (`memory_estimate.ts`): which freed space is reused, and when memory goes back to the system.
 *
 * @module
 */

/**
 * glibc's malloc, as far as RSS goes: blocks of 32 MiB and more are mapped on their own and
 * unmapped when freed; smaller ones come from a heap that reuses freed space (best fit, split,
 * coalesced) and gives memory back only when at least 64 MiB are free at its top. What the
 * process holds is `mapped + top`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const heap = new HeapModel();
 * heap.allocate(1, 1024);
 * heap.allocate(2, 2048);
 * heap.release(1, 1024);
 * heap.allocate(3, 512); // fits where block 1 was
 * assert.equal(heap.mapped + heap.top, 3072);
 * heap.allocate(4, 64 * 2 ** 20); // large: mapped on its own
 * assert.equal(heap.mapped, 64 * 2 ** 20);
 * ```
 */
export class HeapModel {
  static readonly MAPPED = 32 * 2 ** 20;
  static readonly TRIM = 64 * 2 ** 20;
  mapped = 0;
  top = 0;
  /** Heap segments in address order. */
  #segments: { start: number; size: number; free: boolean }[] = [];
  readonly #at = new Map<number, number>();

  /** Allocates `size` bytes, known as `id` to {@link HeapModel.release}. */
  allocate(id: number, size: number): void {
    if (size >= HeapModel.MAPPED) {
      this.mapped += size;
      this.#at.set(id, -1);
      return;
    }
    let best = -1;
    this.#segments.forEach((g, i) => {
      if (g.free && g.size >= size && (best < 0 || g.size < this.#segments[best].size)) best = i;
    });
    if (best < 0) {
      const last = this.#segments[this.#segments.length - 1];
      if (last?.free) {
        // Grow the free space at the top just enough.
        this.top += size - last.size;
        last.size = size;
        best = this.#segments.length - 1;
      } else {
        this.#segments.push({ start: this.top, size, free: true });
        this.top += size;
        best = this.#segments.length - 1;
      }
    }
    const g = this.#segments[best];
    if (g.size > size) {
      this.#segments.splice(best + 1, 0, {
        start: g.start + size,
        size: g.size - size,
        free: true,
      });
      g.size = size;
    }
    g.free = false;
    this.#at.set(id, g.start);
  }

  release(id: number, size: number): void {
    const start = this.#at.get(id)!;
    this.#at.delete(id);
    if (start < 0) {
      this.mapped -= size;
      return;
    }
    let i = this.#segments.findIndex((g) => g.start === start);
    this.#segments[i].free = true;
    if (i + 1 < this.#segments.length && this.#segments[i + 1].free) {
      this.#segments[i].size += this.#segments[i + 1].size;
      this.#segments.splice(i + 1, 1);
    }
    if (i > 0 && this.#segments[i - 1].free) {
      this.#segments[i - 1].size += this.#segments[i].size;
      this.#segments.splice(i, 1);
      i--;
    }
    const last = this.#segments[this.#segments.length - 1];
    if (last.free && last.size >= HeapModel.TRIM) {
      this.top -= last.size;
      this.#segments.pop();
    }
  }
}
