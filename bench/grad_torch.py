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
import math
import os
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn.functional as F
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

    def conv(name, x, stride=1):
        w = W[name + ".weight"]
        return F.conv2d(x, w, W.get(name + ".bias"), stride=stride, padding=w.shape[-1] // 2)

    def norm(name, x):
        return F.group_norm(x, groups, W[name + ".weight"], W[name + ".bias"], eps=1e-6)

    def resnet(name, x):
        h = conv(name + ".conv1", F.silu(norm(name + ".norm1", x)))
        h = conv(name + ".conv2", F.silu(norm(name + ".norm2", h)))
        skip = conv(name + ".conv_shortcut", x) if name + ".conv_shortcut.weight" in W else x
        return skip + h

    def attention(name, x):
        n, c, hh, ww = x.shape
        h = norm(name + ".group_norm", x).reshape(n, c, hh * ww).transpose(1, 2)
        lin = lambda p, v: F.linear(v, W[f"{name}.{p}.weight"], W[f"{name}.{p}.bias"])
        q, k, v = lin("to_q", h), lin("to_k", h), lin("to_v", h)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1)
        out = lin("to_out.0", a @ v)
        return out.transpose(1, 2).reshape(n, c, hh, ww) + x

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
