"""The Python side of `deno task bench loader`: one fresh process per measurement.

    loader_torch.py LOADER ROOT REFERENCE SIDE READS SEED EVICT

SIDE "items" opens ROOT with examples/torch_dataset.py's LatentDataset and reads READS random
items `ds[i]` with every field; "latents" the same with `fields=("latents",)`; "reference" maps
REFERENCE (every latent of ROOT in the dataset's order, raw float32, 256 per image) as one numpy
memory map and reads the same rows. EVICT says which files are dropped from the page cache first
(posix_fadvise DONTNEED): "latents" (the shards, or the reference), "all" (the index too), or
"none". The same READS indices (from SEED) are read twice: the first pass in the fresh process
(after the eviction), the second again with everything it touched open and cached.

Prints one JSON line: RSS after `import torch, numpy`, time and RSS to open, the two passes'
times, the sampler's time (loader side), the RSS at the end and how much of its growth is pages
of mapped files (RssFile), and a checksum of the latents read.
"""

import importlib.util
import json
import os
import sys
import time

import numpy as np
import torch


def status_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def evict(paths):
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def files_under(root, suffix):
    return [os.path.join(d, n) for d, _, names in os.walk(root) for n in names if n.endswith(suffix)]


def main(loader_py, root, reference, side, reads, seed, which):
    rss_import = status_mb("VmRSS")
    rss_file_import = status_mb("RssFile")
    spec = importlib.util.spec_from_file_location("torch_dataset", loader_py)
    td = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(td)
    loader = side != "reference"
    if which != "none":
        if loader:
            evict(files_under(root, ".safetensors") + (files_under(os.path.join(root, "index"), "") if which == "all" else []))
        else:
            evict([reference])
    out = {"side": side, "evict": which, "rss_import_mb": rss_import, "rss_file_import_mb": rss_file_import}
    t0 = time.perf_counter()
    if loader:
        ds = td.LatentDataset(root, flip="none", fields=None if side == "items" else ("latents",))
        n = len(ds)
    else:
        mm = np.memmap(reference, dtype="<f4", mode="r")
        n = mm.shape[0] // 256
        mm = mm.reshape(n, 256)
    out["open_s"] = time.perf_counter() - t0
    out["rss_open_mb"] = status_mb("VmRSS")
    out["hwm_open_mb"] = status_mb("VmHWM")
    idx = [int(i) for i in np.random.default_rng(seed).choice(n, reads, replace=False)]
    passes = []
    for _ in range(2):
        t0 = time.perf_counter()
        if loader:
            got = [ds[i]["latents"] for i in idx]
        else:
            got = [torch.from_numpy(np.array(mm[i])) for i in idx]
        passes.append(time.perf_counter() - t0)
    out["first_s"], out["second_s"] = passes
    out["checksum"] = float(sum(float(t.double().sum()) for t in got))
    out["shape"] = list(got[0].shape)
    if side == "items":
        out["first_ids"] = [ds[i]["id"] for i in idx[:3]]
        t0 = time.perf_counter()
        sampler = td.BucketBatchSampler(ds, 256, seed=0)
        batches = len(list(iter(sampler)))
        out["sampler_s"] = time.perf_counter() - t0
        out["sampler_batches"] = batches
    out["rss_end_mb"] = status_mb("VmRSS")
    out["rss_file_end_mb"] = status_mb("RssFile") - out["rss_file_import_mb"]
    out["hwm_end_mb"] = status_mb("VmHWM")
    print(json.dumps(out))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], a[2], a[3], int(a[4]), int(a[5]), a[6])
