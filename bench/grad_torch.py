"""PyTorch eager reference for bench/grad.ts: one L2 loss + latent-gradient evaluation of the
SD-v1-shaped decoder whose weights bench/grad.ts wrote as .npy files (same layout as the ONNX
graph: post_quant_conv, conv_in, mid block with attention, up blocks, norm, SiLU, conv_out).
Memory is measured as tests/fixtures/grad_child.ts measures latentforge's side: peak RSS of each
run above the RSS once the weights and inputs are loaded (VmHWM, reset through
/proc/self/clear_refs before every run).

usage: grad_torch.py WEIGHTS_DIR LATENT.npy TARGET.npy GRAD_OUT.npy THREADS
prints {"ready": true, "baseline_mb": B, "threads": T}, then reads commands on stdin, one per
line, and answers each with one JSON line on stdout:
  run   -> {"seconds": S, "peak_mb": P, "loss": [...]}  (one timed forward + loss + backward)
  save  -> {"saved": GRAD_OUT.npy}  (gradient of the last run)
  quit
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
except ImportError:
    print(json.dumps({"error": "torch is not installed for /usr/bin/python3"}))
    sys.exit(3)


def build_decoder(wdir):
    """The SD-v1-shaped decoder as a function of the latent, with the weights under `wdir`
    (written by tests/fixtures/vae.ts writeSdDecoder: one .npy per tensor plus index.json)."""
    with open(os.path.join(wdir, "index.json")) as f:
        index = json.load(f)
    W = {n: torch.from_numpy(np.load(os.path.join(wdir, n + ".npy"))) for n in index["names"]}
    groups = index["groups"]
    channels = index["channels"]
    layers = index["layersPerBlock"]

    conv, norm, resnet, attention = sd_layers(W, groups)

    def decode(z):
        x = conv("post_quant_conv", z)
        x = conv("decoder.conv_in", x)
        x = resnet("decoder.mid_block.resnets.0", x)
        x = attention("decoder.mid_block.attentions.0", x)
        x = resnet("decoder.mid_block.resnets.1", x)
        for i in range(len(channels)):
            for j in range(layers):
                x = resnet(f"decoder.up_blocks.{i}.resnets.{j}", x)
            if i < len(channels) - 1:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
                x = conv(f"decoder.up_blocks.{i}.upsamplers.0.conv", x)
        x = F.silu(norm("decoder.conv_norm_out", x))
        return conv("decoder.conv_out", x)

    return decode


def status_mb(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field + ":")) / 1024


def main():
    wdir, latent_path, target_path, grad_path, threads = sys.argv[1:6]
    threads = int(threads)
    torch.set_num_threads(threads)
    decode = build_decoder(wdir)

    z0 = torch.from_numpy(np.load(latent_path))
    target = torch.from_numpy(np.load(target_path))
    grad = None
    baseline = status_mb("VmRSS")
    print(json.dumps({"ready": True, "baseline_mb": baseline, "threads": torch.get_num_threads()}),
          flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "run":
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            z = z0.clone().requires_grad_(True)
            start = time.perf_counter()
            y = decode(z)
            loss = ((y - target) ** 2).mean(dim=(1, 2, 3))
            (grad,) = torch.autograd.grad(loss.sum(), z)
            seconds = time.perf_counter() - start
            peak = status_mb("VmHWM") - baseline
            losses = loss.detach().numpy().tolist()
            del y, loss, z
            print(json.dumps({"seconds": seconds, "peak_mb": peak, "loss": losses}), flush=True)
        elif cmd == "save":
            np.save(grad_path, grad.numpy())
            print(json.dumps({"saved": grad_path}), flush=True)
        elif cmd == "quit":
            break


if __name__ == "__main__":
    main()
