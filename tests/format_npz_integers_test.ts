/**
 * Integers stay integers in the dataset files: numpy reads `latent_channels` as int64 from
 * latents.npz and h5py as an integer attribute from latents.h5, while a scaling factor of 1
 * stays a float.
 */
import { join } from "node:path";
import { assertEquals } from "./fixtures/assert.ts";
import { encodeNpz } from "../lib/format/npz.ts";
import { writeHdf5File } from "../lib/format/hdf5.ts";
import { fileFacts } from "../lib/package/latent_facts.ts";
import { LatentNormalization } from "../lib/model/normalization.ts";
import { pythonRequirement, runPython } from "./fixtures/python.ts";
import { testIf } from "./fixtures/skip.ts";

testIf(pythonRequirement("numpy, h5py"), {
  name: "latent_channels is an integer in latents.npz and latents.h5; a factor of 1 a float",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "latentforge-npz-int-" });
    try {
      const recorded = LatentNormalization.of(4, { scaling_factor: 1 }).describe();
      const facts = fileFacts(recorded, {
        encoder: "e".repeat(64),
        decoder: "d".repeat(64),
        config: {},
      });
      const latents = { dtype: "<f4" as const, shape: [1, 4, 2, 2], data: new Float32Array(16) };
      await Deno.writeFile(join(dir, "latents.npz"), encodeNpz({ latents, ...facts.npzExtras }));
      await writeHdf5File(join(dir, "latents.h5"), {
        datasets: { latents },
        attributes: facts.attributes,
      });
      const seen = JSON.parse(runPython(
        `import json, sys, numpy, h5py
npz = numpy.load(sys.argv[1] + "/latents.npz")
h5 = h5py.File(sys.argv[1] + "/latents.h5", "r")
kind = lambda v: numpy.asarray(v).dtype.kind
print(json.dumps({
  "npz": [kind(npz["latent_channels"]), int(npz["latent_channels"]), kind(npz["scaling_factor"])],
  "h5": [kind(h5.attrs["latent_channels"]), int(h5.attrs["latent_channels"]), kind(h5.attrs["scaling_factor"])],
}))`,
        [dir],
      ));
      assertEquals(seen, { npz: ["i", 4, "f"], h5: ["i", 4, "f"] });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
