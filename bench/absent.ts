/**
 * What the benchmarks do when something they look for is not there: a folder already gone, a
 * file not yet written, a program not installed. Only "not found" is taken as an answer; any
 * other error (a permission, a full disk) stops the benchmark.
 *
 * @module
 */

/** Removes a folder and everything in it; one already gone is what was wanted. */
export async function removeTree(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Whether a path exists. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** A command's output, or `null` when its program is not installed. */
export async function outputUnlessAbsent(
  command: Deno.Command,
): Promise<Deno.CommandOutput | null> {
  try {
    return await command.output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}
