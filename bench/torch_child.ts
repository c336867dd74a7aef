/**
 * The PyTorch side of the benchmarks: Debian's python3 running a reference script as a
 * long-lived child that answers one JSON line per command line.
 *
 * @module
 */

import { outputUnlessAbsent } from "./absent.ts";

/** The interpreter Debian's python3-torch installs into. */
export const PYTHON = "/usr/bin/python3";

/** The reference scripts import each other from bench/: no `__pycache__` left there. */
const PYTHON_ENV = { PYTHONDONTWRITEBYTECODE: "1" };

/** The torch version `PYTHON` imports, or "" (with a message) when it has none. */
export async function torchVersion(): Promise<string> {
  const check = await outputUnlessAbsent(
    new Deno.Command(PYTHON, {
      args: ["-c", "import torch; print(torch.__version__)"],
      env: PYTHON_ENV,
      stdout: "piped",
      stderr: "piped",
    }),
  );
  const version = check?.code === 0 ? new TextDecoder().decode(check.stdout).trim() : "";
  if (!version) {
    console.log(
      `PyTorch is not available to ${PYTHON} (install python3-torch); ` +
        "timing latentforge only, no comparison.",
    );
  }
  return version;
}

/**
 * A script run as a child (by Python unless `runner` names another interpreter and its
 * arguments): write a line, read a JSON line back.
 */
export class TorchChild {
  readonly #script: string;
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";

  constructor(script: string, args: string[], runner: string[] = [PYTHON]) {
    this.#script = script;
    this.#child = new Deno.Command(runner[0], {
      args: [...runner.slice(1), script, ...args],
      env: PYTHON_ENV,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#reader = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next JSON line the child prints. */
  async line(): Promise<Record<string, unknown>> {
    while (!this.#buffer.includes("\n")) {
      const { value, done } = await this.#reader.read();
      if (done) throw new Error(`${this.#script} exited before answering (see its stderr above)`);
      this.#buffer += value;
    }
    const i = this.#buffer.indexOf("\n");
    const text = this.#buffer.slice(0, i);
    this.#buffer = this.#buffer.slice(i + 1);
    return JSON.parse(text);
  }

  /** Sends one command line and returns the answer. */
  async send(command: string): Promise<Record<string, unknown>> {
    await this.#writer.write(new TextEncoder().encode(`${command}\n`));
    return await this.line();
  }

  /** Sends the script's quit command and waits for it to exit. */
  async close(quit: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(`${quit}\n`));
    await this.#writer.close();
    await this.#reader.cancel();
    await this.#child.status;
  }
}
