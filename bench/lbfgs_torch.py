"""PyTorch reference for latentforge's L-BFGS: torch.optim.LBFGS(history_size=H,
line_search_fn="strong_wolfe", lr=LR) on each image's latent alone, through the decoder graph
tests/fixtures/torch_graph.ts wrote (graph.json + weights.npz, folded for a batch of 1), with the
loss latentforge's l2 loss is: the mean squared error over the image's values.

Every call of the closure (one loss-and-gradient evaluation, line-search ones included) is one
pass, as in latentforge. torch.optim.LBFGS checks max_eval only between its line searches, so it
may run a few passes more than asked; the losses of the first PASSES calls are reported.

usage: lbfgs_torch.py GRAPH_DIR LATENTS.npy TARGETS.npy PASSES HISTORY LR THREADS
prints one JSON object: {"losses": [[loss of each pass] per image], "seconds": [per image],
"torch": version}
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


class GraphError(Exception):
    pass


def conv(x, w, b, a):
    pads = a.get("pads", [0] * 4)
    if pads[0] != pads[2] or pads[1] != pads[3]:
        x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
        padding = 0
    else:
        padding = (pads[0], pads[1])
    return F.conv2d(x, w, b, stride=a.get("strides", [1, 1]), padding=padding,
                    dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))


def reshape(x, shape):
    dims = [x.shape[i] if d == 0 else int(d) for i, d in enumerate(shape)]
    return x.reshape(dims)


def resize(x, scales, a):
    if a.get("mode", "nearest") != "nearest":
        raise GraphError(f"Resize mode {a.get('mode')}: only nearest is exported")
    factors = [float(s) for s in scales.tolist()[2:]]
    if any(f != round(f) or f < 1 for f in factors):
        raise GraphError(f"Resize scales {factors}: only whole upsampling factors are exported")
    return F.interpolate(x, scale_factor=factors, mode="nearest")


OPS = {
    "Conv": lambda v, a: conv(v[0], v[1], v[2] if len(v) > 2 else None, a),
    "Reshape": lambda v, a: reshape(v[0], v[1]),
    "InstanceNormalization": lambda v, a: F.instance_norm(
        v[0], weight=v[1], bias=v[2], eps=a.get("epsilon", 1e-5)),
    "Add": lambda v, a: v[0] + v[1],
    "Sub": lambda v, a: v[0] - v[1],
    "Mul": lambda v, a: v[0] * v[1],
    "Div": lambda v, a: v[0] / v[1],
    "Sigmoid": lambda v, a: torch.sigmoid(v[0]),
    "Tanh": lambda v, a: torch.tanh(v[0]),
    "Relu": lambda v, a: torch.relu(v[0]),
    "Sqrt": lambda v, a: torch.sqrt(v[0]),
    "Transpose": lambda v, a: v[0].permute(a["perm"]),
    "MatMul": lambda v, a: torch.matmul(v[0], v[1]),
    "Softmax": lambda v, a: torch.softmax(v[0], dim=a.get("axis", -1)),
    "Resize": lambda v, a: resize(v[0], v[2], a),
    "Identity": lambda v, a: v[0],
}


def load_decoder(gdir):
    with open(os.path.join(gdir, "graph.json")) as f:
        graph = json.load(f)
    weights = np.load(os.path.join(gdir, "weights.npz"))
    values = {name: torch.from_numpy(weights[key].copy()) for name, key in graph["tensors"].items()}
    for name, c in graph["constants"].items():
        values[name] = torch.tensor(c["values"]).reshape(c["dims"])
    for node in graph["nodes"]:
        if node["op"] not in OPS:
            raise GraphError(f"op {node['op']} is not exported to PyTorch")

    def decode(z):
        env = dict(values)
        env[graph["input"]] = z
        for node in graph["nodes"]:
            args = [env[i] if i else None for i in node["inputs"]]
            env[node["outputs"][0]] = OPS[node["op"]](args, node["attrs"])
        return env[graph["output"]]

    return decode


def lbfgs(decode, z0, target, passes, history, lr):
    """The losses of the first `passes` closure calls of torch.optim.LBFGS on one image."""
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([z], lr=lr, max_iter=passes, max_eval=passes,
                            history_size=history, line_search_fn="strong_wolfe")
    losses = []

    def closure():
        opt.zero_grad()
        loss = ((decode(z) - target) ** 2).mean()
        loss.backward()
        losses.append(loss.item())
        return loss

    opt.step(closure)
    return losses[:passes]


def main():
    gdir, latents_path, targets_path, passes, history, lr, threads = sys.argv[1:8]
    torch.set_num_threads(int(threads))
    decode = load_decoder(gdir)
    latents = torch.from_numpy(np.load(latents_path))
    targets = torch.from_numpy(np.load(targets_path))
    out = {"losses": [], "seconds": [], "torch": torch.__version__}
    for i in range(latents.shape[0]):
        started = time.perf_counter()
        losses = lbfgs(decode, latents[i:i + 1], targets[i:i + 1], int(passes), int(history),
                       float(lr))
        out["seconds"].append(time.perf_counter() - started)
        if not all(math.isfinite(x) for x in losses):
            raise FloatingPointError(f"image {i}: a loss is not finite: {losses}")
        out["losses"].append(losses)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
