/**
 * Loading and slicing configs: JSON files validated by the pipeline's schema, `--set` overrides,
 * and the per-task slices that go into action keys. A string value that starts with `~`,
 * `$HOME` or `${HOME}` (a path under the home directory, which no shell expands inside a JSON
 * file or after `--set field=`) is expanded, and so is the config file's own path.
 *
 * @module
 */
import { expandHome, HomePathError, namesHome } from "../base/home_path.ts";
import type { Json } from "../store/canonical.ts";
import { knownFields, nearestField } from "./config_fields.ts";
import type { ConfigIssue, Pipeline } from "./task.ts";

/** Raised for an unreadable or invalid config; the message names the file and field. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** A bad invocation (exit code 2): nothing was done. */
  readonly exitCode = 2;
}

/**
 * Reads a config file, applies `--set path=value` overrides and validates the result.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pipeline } from "../../pipeline.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({
 *   dataset: { kind: "folder", path: dir },
 *   model: { encoder: { path: "e.onnx" }, decoder: { path: "d.onnx" }, scaling_factor: 1 },
 * }));
 * const config = await loadConfig(pipeline, `${dir}/config.json`, ["optimize.lr=0.05"]);
 * assert.equal(config.optimize.lr, 0.05);
 * assert.equal(config.optimize.max_steps, 100); // a default
 * await assert.rejects(loadConfig(pipeline, `${dir}/config.json`, ["optimize.lr=-1"]), ConfigError);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadConfig<C>(
  pipeline: Pipeline<C>,
  file: string,
  sets: string[] = [],
): Promise<C> {
  let text: string;
  try {
    text = await Deno.readTextFile(homeExpanded(file, "--config"));
  } catch (e) {
    throw new ConfigError(`cannot read config ${file}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config ${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(`config ${file}: expected a JSON object at the top level`);
  }
  for (const set of sets) applySet(raw as Record<string, unknown>, set);
  raw = withHomeExpanded(raw, "");
  const result = pipeline.schema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => describeIssue(issue, raw, pipeline.schema));
    const origin = sets.length ? `${file} (with --set ${sets.join(", ")})` : file;
    throw new ConfigError(`invalid config ${origin}:\n  ${lines.join("\n  ")}`);
  }
  return result.data;
}

function applySet(raw: Record<string, unknown>, set: string): void {
  const eq = set.indexOf("=");
  if (eq <= 0) {
    throw new ConfigError(`--set expects path.to.field=value, found ${JSON.stringify(set)}`);
  }
  const path = set.slice(0, eq).split(".");
  const text = set.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // Not JSON: the value is the text itself (`--set dataset.name=photos`).
    if (!(e instanceof SyntaxError)) throw e;
    value = text;
  }
  let node = raw;
  for (const part of path.slice(0, -1)) {
    const next = node[part];
    if (next === undefined) node[part] = {};
    else if (next === null || typeof next !== "object" || Array.isArray(next)) {
      throw new ConfigError(
        `--set ${set}: ${path.slice(0, path.indexOf(part) + 1).join(".")} is not an object`,
      );
    }
    node = node[part] as Record<string, unknown>;
  }
  node[path[path.length - 1]] = value;
}

/** `path` with the home directory written out; a config error when HOME is not known. */
function homeExpanded(path: string, where: string): string {
  try {
    return expandHome(path);
  } catch (e) {
    if (e instanceof HomePathError) throw new ConfigError(`${where}: ${e.message}`);
    throw e;
  }
}

/** `value` with every string that names the home directory expanded (see the module). */
function withHomeExpanded(value: unknown, path: string): unknown {
  if (typeof value === "string") return namesHome(value) ? homeExpanded(value, path) : value;
  if (Array.isArray(value)) return value.map((v, i) => withHomeExpanded(v, `${path}[${i}]`));
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, withHomeExpanded(v, path ? `${path}.${k}` : k)]),
  );
}

function describeIssue(issue: ConfigIssue, raw: unknown, schema: unknown): string {
  const path = issue.path.map(String).join(".") || "(top level)";
  if (issue.code === "unrecognized_keys" && issue.keys) {
    const where = issue.path.length ? ` in ${path}` : "";
    const known = knownFields(schema, issue.path, raw);
    const named = issue.keys.map((key) => {
      const near = nearestField(key, known);
      return near === undefined ? key : `${key} (did you mean ${near}?)`;
    });
    return `unknown field${issue.keys.length > 1 ? "s" : ""}${where}: ${named.join(", ")}`;
  }
  let found: unknown = raw;
  for (const part of issue.path) {
    found = found !== null && typeof found === "object"
      ? (found as Record<PropertyKey, unknown>)[part]
      : undefined;
  }
  const shown = found === undefined ? "nothing" : JSON.stringify(found);
  return `${path}: ${issue.message} (found ${shown})`;
}

/** Reads a dot path out of a config object. */
export function getPath(config: unknown, path: string): unknown {
  let node: unknown = config;
  for (const part of path.split(".")) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/**
 * The flattened slice of a config a task depends on: leaf dot paths to values. A path written
 * `!path` leaves that part out of the paths before it (`["model", "!model.threads"]`), so
 * fields added to a section later are in the slice unless said otherwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const slice = configSlice({ optimize: { lr: 0.1, steps: 5 } }, ["optimize", "!optimize.steps"]);
 * assert.deepEqual(slice, { "optimize.lr": 0.1 });
 * ```
 */
export function configSlice(config: unknown, paths: string[]): Record<string, Json> {
  const { included, excluded } = splitPaths(paths);
  const out: Record<string, Json> = {};
  const walk = (value: unknown, path: string) => {
    if (isUnder(path, excluded)) return;
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      const keys = Object.keys(value);
      if (keys.length === 0) out[path] = {};
      for (const key of keys) walk((value as Record<string, unknown>)[key], `${path}.${key}`);
    } else if (value !== undefined) {
      out[path] = value as Json;
    }
  };
  for (const path of included) walk(getPath(config, path), path);
  return out;
}

/**
 * The partial config object a task sees: its declared paths (less the `!` ones), and the paths
 * it only reads.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const config = { model: { path: "m.onnx", scale: 1 } };
 * assert.deepEqual(projectConfig(config, ["model", "!model.path"]), { model: { scale: 1 } });
 * assert.deepEqual(projectConfig(config, ["model", "!model.path"], ["model.path"]), config);
 * ```
 */
export function projectConfig(config: unknown, paths: string[], reads: string[] = []): unknown {
  const { included, excluded } = splitPaths(paths);
  const out: Record<string, unknown> = {};
  const set = (path: string, value: unknown) => {
    const parts = path.split(".");
    let node = out;
    for (const part of parts.slice(0, -1)) {
      node[part] ??= {};
      node = node[part] as Record<string, unknown>;
    }
    if (value === undefined) delete node[parts[parts.length - 1]];
    else node[parts[parts.length - 1]] = value;
  };
  for (const path of included) set(path, structuredClone(getPath(config, path)));
  for (const path of excluded) if (getPath(out, path) !== undefined) set(path, undefined);
  for (const path of reads) set(path, structuredClone(getPath(config, path)));
  return out;
}

/**
 * The config without the fields a task declaring `paths` keys on: what its outputs do not
 * state (where inputs are, how things run), for the record of how they were made. Sections
 * left empty are left out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const config = { optimize: { lr: 0.1, batch_size: 4 }, package: { out_dir: "out" } };
 * assert.deepEqual(unkeyedConfig(config, ["optimize", "!optimize.batch_size"]), {
 *   optimize: { batch_size: 4 },
 *   package: { out_dir: "out" },
 * });
 * ```
 */
export function unkeyedConfig(config: unknown, paths: readonly string[]): unknown {
  const walk = (value: unknown, path: string): unknown => {
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return isKeyed(path, paths) ? undefined : value;
    }
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      const kept = walk(v, path === "" ? key : `${path}.${key}`);
      if (kept !== undefined) out[key] = kept;
    }
    return Object.keys(out).length === 0 && path !== "" ? undefined : out;
  };
  return walk(config, "");
}

/**
 * Whether a task declaring config paths `paths` keys on the field `field`: it is under one of
 * them and not under one written `!path`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(isKeyed("optimize.lr", ["optimize", "!optimize.batch_size"]), true);
 * assert.equal(isKeyed("optimize.batch_size", ["optimize", "!optimize.batch_size"]), false);
 * ```
 */
export function isKeyed(field: string, paths: readonly string[]): boolean {
  const { included, excluded } = splitPaths([...paths]);
  return isUnder(field, included) && !isUnder(field, excluded);
}

function splitPaths(paths: string[]): { included: string[]; excluded: string[] } {
  return {
    included: paths.filter((p) => !p.startsWith("!")),
    excluded: paths.filter((p) => p.startsWith("!")).map((p) => p.slice(1)),
  };
}

function isUnder(path: string, prefixes: string[]): boolean {
  return prefixes.some((p) => path === p || path.startsWith(`${p}.`));
}

/** Field-by-field difference of two flattened slices. */
export function diffSlices(
  before: Record<string, Json>,
  after: Record<string, Json>,
): { field: string; before: Json | undefined; after: Json | undefined }[] {
  const fields = new Set([...Object.keys(before), ...Object.keys(after)]);
  const out = [];
  for (const field of [...fields].sort()) {
    if (JSON.stringify(before[field]) !== JSON.stringify(after[field])) {
      out.push({ field, before: before[field], after: after[field] });
    }
  }
  return out;
}
