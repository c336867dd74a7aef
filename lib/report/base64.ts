/**
 * Base64 encoding of bytes for data URIs.
 *
 * @module
 */

/**
 * Encodes bytes as standard base64 (RFC 4648, with padding).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(encodeBase64(new Uint8Array([0x89, 0x50, 0x4e, 0x47])), "iVBORw==");
 * ```
 */
export function encodeBase64(bytes: Uint8Array): string {
  // btoa takes a binary string; building it in chunks keeps the argument list within limits.
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
