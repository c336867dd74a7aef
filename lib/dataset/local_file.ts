/**
 * Taking a local file (an item with `local_path`) the way a download is taken: hashed with MD5
 * and SHA-256 in one streaming pass and checked against the index, so fetch-images can put it
 * in the store without HTTP.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { DownloadError } from "../net/download_error.ts";

/** What {@link verifyLocalFile} resolves with (the shape of a download's result). */
export interface LocalFileResult {
  path: string;
  size: number;
  md5: string;
  sha256: string;
}

/**
 * Hashes `path` and checks it against the expected size and MD5; a mismatch throws a
 * non-retryable {@link DownloadError} (`size` / `md5`) naming the file, since the file changed
 * after the index was built.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.writeTextFile(`${dir}/a.png`, "abc");
 *   const got = await verifyLocalFile(`${dir}/a.png`, {
 *     expectedSize: 3,
 *     expectedMd5: "900150983cd24fb0d6963f7d28e17f72",
 *   });
 *   assert.equal(got.size, 3);
 *   await assert.rejects(
 *     verifyLocalFile(`${dir}/a.png`, { expectedMd5: "0".repeat(32) }),
 *     /expected MD5/,
 *   );
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function verifyLocalFile(
  path: string,
  { expectedSize, expectedMd5 }: { expectedSize?: number | null; expectedMd5?: string | null } = {},
): Promise<LocalFileResult> {
  const md5 = createHash("md5");
  const sha256 = createHash("sha256");
  let size = 0;
  {
    using file = await Deno.open(path, { read: true });
    for await (const chunk of file.readable) {
      md5.update(chunk);
      sha256.update(chunk);
      size += chunk.length;
    }
  }
  const result = { path, size, md5: md5.digest("hex"), sha256: sha256.digest("hex") };
  if (expectedSize != null && size !== expectedSize) {
    throw new DownloadError(
      "size",
      `${path}: expected ${expectedSize} bytes, found ${size} (the file changed since it was listed)`,
      { retryable: false },
    );
  }
  if (expectedMd5 != null && result.md5 !== expectedMd5.toLowerCase()) {
    throw new DownloadError(
      "md5",
      `${path}: expected MD5 ${expectedMd5}, found ${result.md5} (the file changed since it was listed)`,
      { retryable: false },
    );
  }
  return result;
}

/**
 * Checks an archived image's bytes (a tar member, a Parquet row) against the size and MD5 its
 * listing recorded; a mismatch throws a non-retryable {@link DownloadError} naming the item,
 * since the archive changed after it was listed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = new TextEncoder().encode("abc");
 * const spec = { path: "s.tar/1.jpg", size: 3, md5: "900150983cd24fb0d6963f7d28e17f72" };
 * assert.equal((await checkArchived(bytes, spec)).size, 3);
 * await assert.rejects(checkArchived(bytes, { ...spec, md5: "0".repeat(32) }), /expected MD5/);
 * ```
 */
export function checkArchived(
  bytes: Uint8Array,
  spec: { path: string; size: number | null; md5: string | null },
): Promise<{ size: number; md5: string }> {
  const md5 = createHash("md5").update(bytes).digest("hex");
  if (spec.size !== null && bytes.length !== spec.size) {
    return Promise.reject(
      new DownloadError(
        "size",
        `${spec.path}: expected ${spec.size} bytes, found ${bytes.length} (the archive changed since it was listed)`,
        { retryable: false },
      ),
    );
  }
  if (spec.md5 !== null && md5 !== spec.md5) {
    return Promise.reject(
      new DownloadError(
        "md5",
        `${spec.path}: expected MD5 ${spec.md5}, found ${md5} (the archive changed since it was listed)`,
        { retryable: false },
      ),
    );
  }
  return Promise.resolve({ size: bytes.length, md5 });
}
