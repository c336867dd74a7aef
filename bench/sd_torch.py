"""The building blocks of diffusers' AutoencoderKL layout, as functions over a dict of weights
by PyTorch name, for the PyTorch references of the benchmarks (bench/grad_torch.py's decoder,
bench/encode_torch.py's encoder): conv, group norm, ResNet block and single-head attention."""
import math

import torch
import torch.nn.functional as F


def sd_layers(W, groups):
    """conv, norm, resnet and attention over the weights W (name -> tensor), `groups` groups."""

    def conv(name, x, stride=1, padding=None):
        w = W[name + ".weight"]
        pad = w.shape[-1] // 2 if padding is None else padding
        return F.conv2d(x, w, W.get(name + ".bias"), stride=stride, padding=pad)

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

    return conv, norm, resnet, attention
