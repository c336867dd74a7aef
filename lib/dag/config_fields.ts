/**
 * The fields a config section knows, read from its zod schema (through its JSON Schema, which
 * spells objects, unions and defaults one way), and the known field nearest a misspelt one, so
 * `unknown field in optimize: max_step` can go on `(did you mean max_steps?)`.
 *
 * @module
 */
import { z } from "zod";

type JsonSchema = {
  properties?: Record<string, JsonSchema>;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  allOf?: JsonSchema[];
  const?: unknown;
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  definitions?: Record<string, JsonSchema>;
};

/**
 * The field names the object at `path` of `schema` knows (the union of a union's options; of a
 * tagged union's, only those whose tag `raw` has), or an empty list when `schema` is not a zod
 * schema or has no object there.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { z } from "zod";
 *
 * const schema = z.object({ optimize: z.object({ lr: z.number(), max_steps: z.number() }) });
 * assert.deepEqual(knownFields(schema, ["optimize"], {}), ["lr", "max_steps"]);
 * assert.deepEqual(knownFields({}, ["optimize"], {}), []);
 * ```
 */
export function knownFields(schema: unknown, path: PropertyKey[], raw: unknown): string[] {
  if (!(schema instanceof z.ZodType)) return [];
  const root = z.toJSONSchema(schema, { unrepresentable: "any", io: "input" }) as JsonSchema;
  const defs = { ...root.definitions, ...root.$defs };
  // The object schemas `s` stands for: itself, its `allOf` parts, and its union's options (of
  // a tagged union, those whose tag `value` has, when any has).
  const expand = (s: JsonSchema | undefined, value: unknown): JsonSchema[] => {
    if (!s) return [];
    if (s.$ref) return expand(defs[s.$ref.split("/").at(-1)!], value);
    const own = [...(s.properties ? [s] : []), ...(s.allOf ?? []).flatMap((p) => expand(p, value))];
    const options = [...s.oneOf ?? [], ...s.anyOf ?? []].map((o) => expand(o, value));
    const tagged = options.filter((o) => o.some((x) => matchesTags(x, value)));
    return [...own, ...(tagged.length ? tagged : options).flat()];
  };
  let here = expand(root, raw);
  let value = raw;
  for (const part of path) {
    value = value !== null && typeof value === "object"
      ? (value as Record<PropertyKey, unknown>)[part]
      : undefined;
    here = here.flatMap((s) => expand(s.properties?.[String(part)], value));
  }
  return [...new Set(here.flatMap((s) => Object.keys(s.properties ?? {})))];
}

/** Whether every constant field of `option` (a union's tag) has that value in `value`. */
function matchesTags(option: JsonSchema, value: unknown): boolean {
  const tags = Object.entries(option.properties ?? {}).filter(([, p]) => "const" in p);
  if (tags.length === 0 || value === null || typeof value !== "object") return false;
  return tags.every(([k, p]) => (value as Record<string, unknown>)[k] === p.const);
}

/**
 * The known field nearest `name` by edit distance (a letter added, dropped, changed or two
 * swapped), when it is near enough to be a slip of the keyboard; else undefined.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(nearestField("max_step", ["lr", "max_steps", "patience"]), "max_steps");
 * assert.equal(nearestField("pateince", ["lr", "max_steps", "patience"]), "patience");
 * assert.equal(nearestField("colour", ["lr", "max_steps"]), undefined);
 * ```
 */
export function nearestField(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  // Two slips at most, and never more than a third of the name: `lr` is no typo of `loss`.
  const limit = Math.min(2, Math.max(1, Math.floor(name.length / 3)));
  return bestDistance <= limit ? best : undefined;
}

/** Optimal string alignment distance: insertions, deletions, substitutions, transpositions. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => {
    const row = new Array<number>(b.length + 1).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, rows[i - 2][j - 2] + 1);
      }
      rows[i][j] = d;
    }
  }
  return rows[a.length][b.length];
}
