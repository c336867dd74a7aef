"""PyTorch eager reference for bench/optimize.ts: the optimize stage's gradient method as a plain
PyTorch loop. Adam (lr, betas 0.9/0.999, eps 1e-8, as torch.optim.Adam) on the latents, L2 loss
per image (mean over the unclamped decoder output), a fixed number of updates, the best latent
of each image kept. The decoder is the SD-v1-shaped one of bench/grad_torch.py (imported from
there), on the .npy weights bench/optimize.ts wrote.

The passes are those of latentforge's loop: every evaluation is a forward and a backward pass
(the last one, which scores the final latent, too), followed by an Adam step except after the
last.

usage: optimize_torch.py WEIGHTS_DIR THREADS
Then reads commands on stdin, one JSON object per line, and answers each with one JSON line:
  {"cmd": "optimize", "latents": L.npy, "targets": T.npy, "batch": B, "steps": S, "lr": LR}
      -> {"losses": [[loss after 0..S updates] per image],
          "update_seconds": [per batch, the S times from the start of one evaluation to the
                             start of the next: evaluation, Adam step and bookkeeping]}
         images are taken B at a time, in order
  {"cmd": "rss"}  -> {"peak_rss_mb": M}  (VmHWM of this process)
  {"cmd": "quit"}
"""
import json
import os
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print(json.dumps({"error": "torch is not installed for /usr/bin/python3"}), flush=True)
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grad_torch import build_decoder  # noqa: E402  (the one definition of the model)


class ReferenceModelError(Exception):
    pass


def per_image_l2(decode, z, target):
    y = decode(z)
    return ((y - target) ** 2).mean(dim=(1, 2, 3))


def optimize_batch(decode, z0, target, steps, lr):
    """`steps` Adam updates of one batch, then one more evaluation of the final latent; returns
    the per-image losses after 0..steps updates, the best latents and the time of each update
    (from the start of its evaluation to the start of the next one)."""
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr, betas=(0.9, 0.999), eps=1e-8)
    best = z0.clone()
    best_loss = torch.full((z0.shape[0],), float("inf"))
    history = []
    starts = []
    for step in range(steps + 1):
        starts.append(time.perf_counter())
        opt.zero_grad(set_to_none=True)
        loss = per_image_l2(decode, z, target)
        # Summing the per-image means gives each image the gradient of its own loss.
        loss.sum().backward()
        loss = loss.detach()
        if not torch.isfinite(loss).all():
            raise FloatingPointError(f"loss is {loss.tolist()} at step {step}")
        history.append(loss.tolist())
        with torch.no_grad():
            improved = loss < best_loss
            best[improved] = z.detach()[improved]
            best_loss = torch.where(improved, loss, best_loss)
        if step < steps:
            opt.step()
    return history, best, [b - a for a, b in zip(starts, starts[1:])]


def main():
    wdir, threads = sys.argv[1:3]
    torch.set_num_threads(int(threads))
    decode = build_decoder(wdir)
    print(json.dumps({"ready": True, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg["cmd"]
        if cmd == "optimize":
            latents = torch.from_numpy(np.load(msg["latents"]))
            targets = torch.from_numpy(np.load(msg["targets"]))
            batch, steps, lr = msg["batch"], msg["steps"], msg["lr"]
            n = latents.shape[0]
            if n % batch != 0:
                raise ReferenceModelError(f"expected a multiple of {batch} images, found {n}")
            losses = []
            update_seconds = []
            for i in range(0, n, batch):
                history, _, times = optimize_batch(
                    decode, latents[i : i + batch], targets[i : i + batch], steps, lr
                )
                losses.extend([[h[j] for h in history] for j in range(batch)])
                update_seconds.append(times)
            answer = {"losses": losses, "update_seconds": update_seconds}
            print(json.dumps(answer), flush=True)
        elif cmd == "rss":
            with open("/proc/self/status") as f:
                hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
            print(json.dumps({"peak_rss_mb": hwm / 1024}), flush=True)
        elif cmd == "quit":
            break
        else:
            raise ReferenceModelError(f"expected optimize, rss or quit, found {cmd!r}")


if __name__ == "__main__":
    main()
