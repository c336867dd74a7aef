/**
 * Starts the command line with the narrowest Deno permissions its arguments and config allow:
 * reads of the project, the cache, the config and the local files the config names; writes to
 * the cache and the output directory; network to the hosts the config (or a local spec) names;
 * FFI to the project's npm packages (sharp and onnxruntime-node load native addons). The
 * `deno task`s run it as
 *
 * ```sh
 * deno run --allow-read --allow-run=deno --allow-env=HOME,LATENTFORGE_NET,LATENTFORGE_LIBDEFLATE lib/cli/launch.ts run …
 * ```
 *
 * The launcher itself only reads the config (and a local spec or URL list, for its hosts) and
 * starts `deno`; it writes nothing and opens no connection. It reads `HOME` to find the paths
 * that name the home directory (`--cache ~/cache`, `--set dataset.path=~/photos`), as the
 * command does.
 *
 * @module
 */
import { datasetReadPaths } from "../dataset/dataset_paths.ts";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expandHome, HomePathError } from "../base/home_path.ts";
import { ConfigError, loadConfig } from "../dag/config.ts";
import type { Pipeline } from "../dag/task.ts";
import { type Config, ConfigSchema } from "../../config/schema.ts";
import { libdeflatePath } from "../image/libdeflate.ts";
import { libcPath } from "../dataset/libc_dir.ts";
import { publishedFolders } from "../store/published_list.ts";

/** The project root (where deno.json, pipeline.ts and node_modules live). */
const PROJECT = resolve(fileURLToPath(new URL("../../", import.meta.url)));
/** The default of `--config` (pipeline.ts's `defaultConfig`). */
const DEFAULT_CONFIG = "config/ffhq.json";
/** Slurm's client commands, run by the Slurm executor. */
const SLURM_COMMANDS = ["sbatch", "squeue", "sacct", "scontrol", "scancel"];
/** Google Drive answers FFHQ's `drive.google.com` links from this host. */
const DRIVE_HOSTS = ["drive.google.com", "drive.usercontent.google.com"];
/** Options of the CLI that take a value (so their value is not taken for the command). */
const VALUE_OPTIONS = new Set([
  "--config",
  "--set",
  "--cache",
  "--limit",
  "--force",
  "--concurrency",
  "--executor",
  "--format",
  "--keep-runs",
  "--work",
  "--shard",
]);

/** Deno permissions of one command. */
export interface Permissions {
  read: string[];
  write: string[];
  /** Hosts (`host` or `host:port`); `"all"` where the hosts cannot be known before the run. */
  net: string[] | "all";
  run: string[];
  ffi: string[];
  sys: string[];
  /** Directory for temp files (TMPDIR of the command): inside the cache. */
  tmpDir: string;
}

/** Options of {@link permissionsFor}. */
export interface PermissionOptions {
  /** Directory relative paths are resolved against. Default: the current directory. */
  cwd?: string;
  /** Extra hosts (comma-separated, or `*` for any), from `LATENTFORGE_NET`. Default none. */
  extraNet?: string;
  /** Hosts the command serves on (the demo's mirror). Default none. */
  listen?: string[];
  /** Also write to the directories of the model paths (the demo generates its models). */
  writeModels?: boolean;
}

interface Parsed {
  command: string | undefined;
  config: string;
  cache: string;
  sets: string[];
  executor?: string;
  /** `run --dry-run`: a plan, which writes nothing outside the cache. */
  dryRun: boolean;
}

function parseArgs(args: string[]): Parsed {
  const out: Parsed = {
    command: undefined,
    config: DEFAULT_CONFIG,
    cache: "./cache",
    sets: [],
    dryRun: false,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const eq = arg.indexOf("=");
    const [name, inline] = arg.startsWith("--") && eq > 0
      ? [arg.slice(0, eq), arg.slice(eq + 1)]
      : [arg, undefined];
    if (VALUE_OPTIONS.has(name)) {
      const value = inline ?? args[++i];
      if (value === undefined) break;
      if (name === "--config") out.config = value;
      else if (name === "--cache") out.cache = value;
      else if (name === "--set") out.sets.push(value);
      else if (name === "--executor") out.executor = value;
    } else if (arg === "--dry-run") out.dryRun = true;
    else if (!arg.startsWith("-") && out.command === undefined) out.command = arg;
  }
  return out;
}

/**
 * The permissions a CLI invocation needs, computed from its arguments and config. A config
 * that cannot be loaded gives the permissions without its paths; the command then reports
 * the config's error itself.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * // gc reads no config: the project and its cache, and it writes only the cache.
 * const p = await permissionsFor(["gc", "--cache", "/data/latentforge-cache"]);
 * assert.deepEqual(p.write, ["/data/latentforge-cache"]);
 * assert.deepEqual(p.net, []);
 * assert.ok(denoFlags(p).includes("--allow-write=/data/latentforge-cache"));
 * ```
 */
export async function permissionsFor(
  args: string[],
  { cwd = Deno.cwd(), extraNet = "", listen = [], writeModels = false }: PermissionOptions = {},
): Promise<Permissions> {
  const parsed = parseArgs(args);
  const abs = (p: string) => resolve(cwd, homeExpanded(p));
  const cache = abs(parsed.cache);
  const p: Permissions = {
    read: [PROJECT, cache, abs(parsed.config)],
    write: [cache],
    net: [...listen],
    run: [],
    ffi: [join(PROJECT, "node_modules")],
    // systemMemoryInfo: optimize fits its batch to the memory available.
    sys: ["cpus", "hostname", "networkInterfaces", "statfs", "systemMemoryInfo"],
    tmpDir: join(cache, "tmp"),
  };
  // preprocess inflates PNGs with the system's libdeflate when it is installed.
  const deflate = libdeflatePath();
  if (deflate !== undefined) {
    p.read.push(deflate);
    p.ffi.push(deflate);
  }
  // Folder listings read directories through the C library (getdents64, statx) when allowed.
  const libc = libcPath();
  if (libc !== undefined) {
    p.read.push(libc);
    p.ffi.push(libc);
  }
  if (parsed.command === "verify") {
    // verify re-hashes the folders the cache published, and rewrites files that differ.
    for (const dir of await publishedFolders(cache)) {
      p.read.push(dirname(dir));
      p.write.push(dirname(dir));
    }
  }
  const withConfig = ["run", "schedule", "status", "explain"].includes(parsed.command ?? "");
  if (!withConfig) return finish(p);

  let config: Config;
  try {
    const schemaOnly = { schema: ConfigSchema } as unknown as Pipeline<Config>;
    config = await loadConfig(schemaOnly, abs(parsed.config), parsed.sets);
  } catch (e) {
    // The command reports the config's error itself, with the grants it has without it.
    if (!(e instanceof ConfigError)) throw e;
    return finish(p);
  }
  const local = [...localPaths(config), ...datasetReadPaths(config.dataset)].map(abs);
  p.read.push(...local);
  // Publishing swaps a finished copy in by rename: it writes `<out_dir>.tmp-*` beside out_dir,
  // which a path grant can only cover through out_dir's parent.
  const out = dirname(abs(config.package.out_dir));
  p.read.push(out);
  if (writeModels) {
    for (const m of [config.model.encoder.path, config.model.decoder?.path]) {
      if (m) p.write.push(dirname(abs(m)));
    }
  }
  if (parsed.command === "run" || parsed.command === "schedule") {
    // status, explain and a plan only read what a run writes: the cache is all they write to.
    if (!parsed.dryRun) {
      p.write.push(out);
      if (config.download.materialize) p.write.push(abs(config.download.materialize));
    }
    const hosts = await configHosts(config, abs);
    if (hosts === "all" || extraNet.trim() === "*") p.net = "all";
    else {
      p.net = [...p.net as string[], ...hosts, ...extraNet.split(",").filter((h) => h.trim())];
    }
    const executor = parsed.executor ?? config.executor?.kind ?? "local";
    if (parsed.command === "run" && executor === "slurm") p.run.push(...SLURM_COMMANDS);
  }
  return finish(p);
}

/** `path` with the home directory written out; as it is when HOME is not set (the command says so). */
function homeExpanded(path: string): string {
  try {
    return expandHome(path);
  } catch (e) {
    if (!(e instanceof HomePathError)) throw e;
    return path;
  }
}

function finish(p: Permissions): Permissions {
  const uniq = (xs: string[]) => [...new Set(xs)];
  return {
    ...p,
    read: uniq(p.read),
    write: uniq(p.write),
    net: p.net === "all" ? "all" : uniq(p.net),
  };
}

/** The `deno run` flags that grant `p`. */
export function denoFlags(p: Permissions): string[] {
  const list = (flag: string, xs: string[]) => xs.length ? [`${flag}=${xs.join(",")}`] : [];
  return [
    "--no-prompt",
    ...list("--allow-read", p.read),
    ...list("--allow-write", p.write),
    ...(p.net === "all" ? ["--allow-net"] : list("--allow-net", p.net)),
    ...list("--allow-run", p.run),
    ...list("--allow-ffi", p.ffi),
    ...list("--allow-sys", p.sys),
    // h5wasm's runtime copies the whole environment at start, so no narrower grant works.
    "--allow-env",
    "--unstable-kv",
    "--unstable-cron",
  ];
}

/** Local files and folders the config names besides the dataset (labels, models). */
function localPaths(c: Config): string[] {
  const paths = [
    c.labels?.source.path,
    c.model.encoder.path,
    c.model.decoder?.path,
    c.download.materialize ?? undefined,
  ];
  return paths.filter((x): x is string => typeof x === "string");
}

/** Hosts a run may contact, or "all" when the item URLs live in a file only the run fetches. */
async function configHosts(c: Config, abs: (p: string) => string): Promise<string[] | "all"> {
  const hosts = new Set<string>();
  const add = (url: string | undefined) => {
    if (!url) return;
    if (!URL.canParse(url)) return; // Not a URL: the command reports it.
    const u = new URL(url);
    if (u.protocol === "http:" || u.protocol === "https:") hosts.add(u.host);
  };
  const d = c.dataset;
  add(c.labels?.source.url);
  add(c.model.encoder.url);
  add(c.model.decoder?.url);
  if (d.kind === "ffhq") {
    add(d.spec.url);
    for (const m of d.mirrors) add(m);
    if (d.spec.path) {
      for (const u of await urlsIn(abs(d.spec.path), /"file_url"\s*:\s*"([^"]+)"/g)) add(u);
    } else {
      // The spec is downloaded by the run; NVIDIA's names Google Drive, others their own host.
      for (const h of DRIVE_HOSTS) hosts.add(h);
    }
  } else if (d.kind === "urls") {
    if (!d.list.path) return "all";
    add(d.list.url);
    for (const u of await urlsIn(abs(d.list.path), /(https?:\/\/[^\s,"']+)/g)) add(u);
  }
  if (hosts.has("drive.google.com")) { for (const h of DRIVE_HOSTS) hosts.add(h); }
  if (c.download.google_api_key_env) add(c.download.google_api_url);
  return [...hosts];
}

/** Distinct scheme+host prefixes of the URLs a pattern finds in a file, read as a stream. */
async function urlsIn(path: string, pattern: RegExp): Promise<string[]> {
  const found = new Set<string>();
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (e) {
    // A spec or list that is not there names no host; the command reports it missing.
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    return [];
  }
  const decoder = new TextDecoder();
  let carry = "";
  for await (const chunk of file.readable) {
    const text = carry + decoder.decode(chunk, { stream: true });
    for (const m of text.matchAll(pattern)) {
      const origin = /^(https?:\/\/[^/?#]+)/.exec(m[1]);
      if (origin) found.add(origin[1]);
    }
    // Keep the tail so a URL split across chunks is seen whole next time.
    carry = text.slice(-4096);
  }
  return [...found];
}

/**
 * Runs `entry` with `args` under the computed permissions and returns its exit code.
 * Signals reach the command; the launcher waits for it.
 */
export async function launch(
  entry: string,
  args: string[],
  permissionArgs: string[],
  options: PermissionOptions = {},
): Promise<number> {
  const p = await permissionsFor(permissionArgs, {
    ...options,
    extraNet: Deno.env.get("LATENTFORGE_NET") ?? "",
  });
  const child = new Deno.Command("deno", {
    args: ["run", ...denoFlags(p), entry, ...args],
    // ONNX Runtime's telemetry would write a device id under ~/.cache and logs into TMPDIR.
    env: { TMPDIR: p.tmpDir, ORT_DISABLE_TELEMETRY: "1" },
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  // Ctrl-C reaches the whole process group; the command handles it and the launcher waits.
  const ignore = () => {};
  const forward = () => child.kill("SIGTERM");
  Deno.addSignalListener("SIGINT", ignore);
  Deno.addSignalListener("SIGTERM", forward);
  try {
    const status = await child.status;
    return status.signal ? 128 + signalNumber(status.signal) : status.code;
  } finally {
    Deno.removeSignalListener("SIGINT", ignore);
    Deno.removeSignalListener("SIGTERM", forward);
  }
}

function signalNumber(signal: Deno.Signal): number {
  return ({ SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal] ?? 1;
}

if (import.meta.main) {
  const args = Deno.args;
  if (args[0] === "demo") {
    // The demo runs `run package --config config/demo.json`, serves its mirror on 127.0.0.1
    // and writes its generated VAE next to the model paths of that config.
    const rest = args.slice(1);
    Deno.exit(
      await launch(
        join(PROJECT, "tests/fixtures/demo.ts"),
        rest,
        ["run", "--config", "config/demo.json", ...rest],
        { listen: ["127.0.0.1"], writeModels: true },
      ),
    );
  }
  Deno.exit(await launch(join(PROJECT, "pipeline.ts"), args, args));
}
