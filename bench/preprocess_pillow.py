"""Reference preprocessing with Pillow and NumPy, for bench/preprocess.ts.

Usage: preprocess_pillow.py IMAGES_DIR OUT_DIR SIZE PROCESSES COUNT

The first COUNT PNGs (in name order) under IMAGES_DIR/<folder>/ is center-cropped to a square, resized to SIZE x SIZE with
Pillow's LANCZOS filter, scaled to float32 in [-1, 1], laid out NCHW with N = 1 and saved with
np.save to OUT_DIR/<folder>/<name>.npy, on a multiprocessing pool of PROCESSES workers.

Timed inside this process, like latentforge's side of the benchmark: from just before the pool
starts to the last worker joined, so the interpreter's start, the imports and the listing of the
images are not counted (latentforge's start and module loading are not either). Prints
{"seconds": wall seconds of that span, "cpu_seconds": CPU seconds of this process and its
workers over that span}.
"""

import json
import os
import resource
import sys
import time
from multiprocessing import Pool

import numpy as np
from PIL import Image


def preprocess(job):
    src, dst, size = job
    with Image.open(src) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s)).resize((size, size), Image.LANCZOS)
    a = np.asarray(im, dtype=np.float32) / 127.5 - 1.0
    np.save(dst, np.ascontiguousarray(a.transpose(2, 0, 1)[None]))
    return dst


def main():
    images, out = sys.argv[1], sys.argv[2]
    size, processes, count = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    jobs = []
    for folder in sorted(os.listdir(images)):
        os.makedirs(os.path.join(out, folder), exist_ok=True)
        for name in sorted(os.listdir(os.path.join(images, folder))):
            if name.endswith(".png"):
                stem = name[: -len(".png")]
                jobs.append((os.path.join(images, folder, name), os.path.join(out, folder, stem + ".npy"), size))
    jobs = jobs[:count]
    if len(jobs) != count:
        sys.exit(f"expected {count} images under {images}, found {len(jobs)}")
    def cpu():
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        return total

    cpu_start = cpu()
    start = time.perf_counter()
    pool = Pool(processes)
    for _ in pool.imap_unordered(preprocess, jobs, chunksize=8):
        pass
    pool.close()
    pool.join()  # joined workers count in RUSAGE_CHILDREN
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu() - cpu_start}))


if __name__ == "__main__":
    main()
