"""PyTorch reference for bench/encode.ts: a folder of JPEGs to latents, the way a PyTorch user
writes it. A DataLoader with worker processes decodes each JPEG with PIL, cuts the centred square
(latentforge's crop: the kept side is the shorter one, the offset rounded down), resizes it to
SIZE x SIZE with Pillow's LANCZOS, scales it to [-1, 1] and batches; the main process runs the
SD-v1-layout encoder whose weights bench/encode_inputs.ts wrote (weights.npz by PyTorch name,
index.json for the shape) under torch.inference_mode, and saves every latent as .npy.

usage: encode_torch.py WEIGHTS_DIR IMAGES_DIR COUNT OUT_DIR SIZE BATCH WORKERS THREADS
prints one JSON line: {"seconds": wall seconds from the first batch asked for to the last latent
saved, "images": COUNT, "threads": torch's intra-op threads, "torch": version}.
"""
import json
import os
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    sys.dont_write_bytecode = True  # the shared blocks leave no __pycache__ beside them
    from sd_torch import sd_layers
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
except ImportError as missing:
    print(json.dumps({"error": f"{missing.name} is not installed for {sys.executable}"}))
    sys.exit(3)


class Jpegs(Dataset):
    """Image i of the folder as a 3 x SIZE x SIZE float32 tensor in [-1, 1]."""

    def __init__(self, paths, size):
        self.paths = paths
        self.size = size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as im:
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            im = im.crop((left, top, left + side, top + side))
            im = im.resize((self.size, self.size), Image.LANCZOS)
        pixels = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy())
        return pixels.permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def build_encoder(wdir):
    """The encoder of tests/fixtures/vae.ts (sdEncoder, diffusers' AutoencoderKL layout) as a
    function of the image batch; its output is the latent distribution's mean."""
    with open(os.path.join(wdir, "index.json")) as f:
        index = json.load(f)
    with np.load(os.path.join(wdir, "weights.npz")) as npz:
        W = {name: torch.from_numpy(npz[name]) for name in npz.files}
    groups, channels = index["groups"], index["channels"]
    layers, latent = index["layersPerBlock"], index["latentChannels"]

    conv, norm, resnet, attention = sd_layers(W, groups)

    def encode(x):
        x = conv("encoder.conv_in", x)
        for i in range(len(channels)):
            for j in range(layers):
                x = resnet(f"encoder.down_blocks.{i}.resnets.{j}", x)
            if i < len(channels) - 1:
                # diffusers' Downsample2D: pad right and bottom by one, then stride 2.
                x = conv(f"encoder.down_blocks.{i}.downsamplers.0.conv",
                         F.pad(x, (0, 1, 0, 1)), stride=2, padding=0)
        x = resnet("encoder.mid_block.resnets.0", x)
        x = attention("encoder.mid_block.attentions.0", x)
        for r in range(1, index["midResnets"]):
            x = resnet(f"encoder.mid_block.resnets.{r}", x)
        x = F.silu(norm("encoder.conv_norm_out", x))
        x = conv("quant_conv", conv("encoder.conv_out", x))
        return x[:, :latent]

    return encode


def main():
    wdir, images, count, out, size, batch, workers, threads = sys.argv[1:9]
    count, size, batch = int(count), int(size), int(batch)
    workers, threads = int(workers), int(threads)
    torch.set_num_threads(threads)
    encode = build_encoder(wdir)
    names = sorted(n for n in os.listdir(images) if n.endswith(".jpg"))[:count]
    if len(names) != count:
        sys.exit(f"expected {count} JPEGs in {images}, found {len(names)}")
    os.makedirs(out, exist_ok=True)
    loader = DataLoader(Jpegs([os.path.join(images, n) for n in names], size),
                        batch_size=batch, num_workers=workers, shuffle=False)
    start = time.perf_counter()
    done = 0
    with torch.inference_mode():
        for pixels in loader:
            latents = encode(pixels).numpy()
            for z in latents:
                np.save(os.path.join(out, names[done][: -len(".jpg")] + ".npy"), z[None])
                done += 1
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "images": done, "threads": torch.get_num_threads(),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
