"""PyTorch loader for latentforge datasets.

Reads a dataset written by `deno task run` (its `package.out_dir`) through its `index.json`,
whatever the layout: safetensors shards (`package.layout: "shards"`), per-split files
(`"split"`: `latents.safetensors` or `latents.npz`) or one `.npz` per image (`"per_image"`).
It depends only on torch and numpy: safetensors files are read from their header (an 8-byte
little-endian length, then JSON) and memory-mapped, so a shard is never read whole.

    from torch.utils.data import DataLoader
    from torch_dataset import LatentDataset, BucketBatchSampler, collate

    ds = LatentDataset("out/", split="train")           # flip="pair": flipped latents beside
    loader = DataLoader(ds, batch_sampler=BucketBatchSampler(ds, batch_size=16, seed=0),
                        collate_fn=collate, num_workers=2)
    for batch in loader:
        batch["latents"]              # B×C×h×w float32, one bucket per batch
        batch["latents_flipped"]      # the horizontally flipped images' latents
        batch["original_size"]        # B×2 int64 (height, width), SDXL's conditioning
        batch["crop_coords_top_left"] # B×2 (top, left); batch["target_size"] B×2
        batch["labels"]["age_group"]  # one value per image (FFHQ-Aging labels)
        batch["labels"]["class"]      # B int64 class indices (class folders; ds.class_to_idx)
        batch["caption"]              # B captions (tar shards, Parquet), "" where none
        batch["meta"]                 # B dicts of the source's other metadata

Run it as a script to print a summary: `python3 examples/torch_dataset.py out/ --batch-size 8`.
"""

import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

SCHEMA_VERSION = 1

_DTYPES = {
    "F16": "<f2",
    "F32": "<f4",
    "F64": "<f8",
    "I8": "i1",
    "I16": "<i2",
    "I32": "<i4",
    "I64": "<i8",
    "U8": "u1",
    "BOOL": "?",
}

_CONDITIONING = ("original_size", "crop_coords_top_left", "crop_box", "target_size")


class DatasetFormatError(Exception):
    """A dataset file does not hold what its index says."""


class SafetensorsFile:
    """One safetensors file: its header, and its tensors as read-only memory maps."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise DatasetFormatError(f"{path}: expected an 8-byte header length, found {len(head)} bytes")
            (length,) = struct.unpack("<Q", head)
            size = os.fstat(f.fileno()).st_size
            if length > size - 8:
                raise DatasetFormatError(f"{path}: header length {length} exceeds the file ({size} bytes)")
            self.header = json.loads(f.read(length).decode("utf-8"))
        self.metadata = self.header.pop("__metadata__", {})
        self._start = 8 + length
        self._maps = {}

    def tensor(self, name):
        """The whole tensor as a numpy memory map (no copy)."""
        if name not in self._maps:
            if name not in self.header:
                raise DatasetFormatError(f"{self.path}: expected a tensor {name!r}, found {sorted(self.header)}")
            entry = self.header[name]
            dtype = _DTYPES.get(entry["dtype"])
            if dtype is None:
                raise DatasetFormatError(f"{self.path}: tensor {name!r} has dtype {entry['dtype']}, which numpy cannot map")
            begin, end = entry["data_offsets"]
            shape = tuple(entry["shape"])
            if end - begin != int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize:
                raise DatasetFormatError(f"{self.path}: tensor {name!r} spans {end - begin} bytes, not its shape {list(shape)}")
            if end == begin:
                self._maps[name] = np.zeros(shape, dtype=dtype)
            else:
                self._maps[name] = np.memmap(self.path, dtype=dtype, mode="r", offset=self._start + begin, shape=shape)
        return self._maps[name]


class LatentDataset(Dataset):
    """The images of a latentforge dataset, as dicts of tensors, conditioning and labels.

    root: the dataset directory (with `index.json`).
    split: one split's images (e.g. "train", "female"), or None for all.
    flip: "pair" (default) gives `latents_flipped` beside `latents` when the dataset has flips;
        "expand" makes each flipped latent an item of its own (twice the items; `flipped` says
        which, and `crop_coords_top_left` is the flipped image's); "none" ignores flips.
    initial: also give `initial_latents` (the encoder's latent before optimization; a dataset
        built with optimize.method "none" has only `latents`, which are the encoder's).

    `class_to_idx` maps class names to the indices in `labels["class"]` (class-folder datasets,
    as torchvision's ImageFolder; empty otherwise); `classes` lists the names in index order.
    verify: check every file's sha256 against the index before reading (slow for big datasets).
    """

    def __init__(self, root, split=None, flip="pair", initial=False, verify=False):
        self.root = root
        with open(os.path.join(root, "index.json"), encoding="utf-8") as f:
            self.index = json.load(f)
        version = self.index.get("schema_version")
        if version != SCHEMA_VERSION:
            raise DatasetFormatError(f"{root}/index.json: expected schema_version {SCHEMA_VERSION}, found {version}")
        if flip not in ("pair", "expand", "none"):
            raise ValueError(f"flip: expected 'pair', 'expand' or 'none', found {flip!r}")
        if flip != "none" and not self.index["flip"]:
            flip = "none"
        self.flip = flip
        self.class_to_idx = dict(self.index.get("class_to_idx", {}))
        self.classes = sorted(self.class_to_idx, key=self.class_to_idx.get)
        encoder_only = any("initial_latents" not in im["tensors"] for im in self.index["images"][:1])
        if initial and encoder_only:
            raise ValueError("initial: this dataset holds the encoder's latents only (optimize.method \"none\"): use latents")
        self.initial = initial
        self.images = [im for im in self.index["images"] if split is None or im["split"] == split]
        if split is not None and not self.images:
            splits = sorted({im["split"] for im in self.index["images"]})
            raise ValueError(f"split {split!r}: expected one of {splits}")
        if verify:
            for entry in self.index["files"]:
                digest = _sha256(os.path.join(root, entry["file"]))
                if digest != entry["sha256"]:
                    raise DatasetFormatError(f"{entry['file']}: sha256 {digest}, index says {entry['sha256']}")
        self._files = {}
        self._npz = {}

    def __len__(self):
        return len(self.images) * (2 if self.flip == "expand" else 1)

    def bucket(self, i):
        """The bucket name (WxH) of item i, without reading it."""
        return self.images[i // 2 if self.flip == "expand" else i]["bucket"]

    def __getitem__(self, i):
        if i < 0:
            i += len(self)
        flipped = self.flip == "expand" and i % 2 == 1
        image = self.images[i // 2 if self.flip == "expand" else i]
        names = image["tensors"]
        item = {
            "id": image["id"],
            "split": image["split"],
            "bucket": image["bucket"],
            "flipped": flipped,
            "latents": self._read(image, names["latents_flipped" if flipped else "latents"]),
        }
        if self.initial:
            item["initial_latents"] = self._read(image, names["initial_latents_flipped" if flipped else "initial_latents"])
        if self.flip == "pair":
            item["latents_flipped"] = self._read(image, names["latents_flipped"])
            if self.initial:
                item["initial_latents_flipped"] = self._read(image, names["initial_latents_flipped"])
        for key in _CONDITIONING:
            item[key] = torch.tensor(image[key], dtype=torch.int64)
        if flipped:
            item["crop_coords_top_left"] = torch.tensor(image["crop_coords_top_left_flipped"], dtype=torch.int64)
        elif self.flip == "pair":
            item["crop_coords_top_left_flipped"] = torch.tensor(image["crop_coords_top_left_flipped"], dtype=torch.int64)
        item["labels"] = dict(image["labels"])
        item["caption"] = image.get("caption", "")
        item["meta"] = dict(image.get("meta", {}))
        return item

    def _read(self, image, name):
        path = os.path.join(self.root, image["file"])
        row = image["row"]
        if path.endswith(".safetensors"):
            f = self._files.get(path)
            if f is None:
                f = self._files[path] = SafetensorsFile(path)
            array = f.tensor(name)
            array = array if row is None else array[row]
        elif path.endswith(".npz"):
            if row is None:
                with np.load(path) as npz:
                    array = npz[name]
            else:
                key = (path, name)
                if key not in self._npz:
                    with np.load(path) as npz:
                        self._npz[key] = npz[name]
                array = self._npz[key][row]
        else:
            raise DatasetFormatError(f"{image['file']}: this loader reads .safetensors and .npz files (add one of those to package.formats)")
        return torch.from_numpy(np.array(array, dtype=array.dtype, copy=True))


class BucketBatchSampler(Sampler):
    """Batches of indices that never mix buckets: shuffled within each bucket, and the batches
    shuffled among themselves (with `seed` and the epoch set by `set_epoch`)."""

    def __init__(self, dataset, batch_size, shuffle=True, drop_last=False, seed=0):
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, found {batch_size}")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        self.buckets = {}
        for i in range(len(dataset)):
            self.buckets.setdefault(dataset.bucket(i), []).append(i)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def _batches(self):
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        batches = []
        for name in sorted(self.buckets):
            indices = self.buckets[name]
            if self.shuffle:
                indices = [indices[j] for j in torch.randperm(len(indices), generator=generator).tolist()]
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start:start + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            batches = [batches[j] for j in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def __iter__(self):
        return iter(self._batches())

    def __len__(self):
        round_ = math.floor if self.drop_last else math.ceil
        return sum(round_(len(v) / self.batch_size) for v in self.buckets.values())


def collate(items):
    """Stacks a batch of one bucket: tensors stacked, ids, buckets, captions and metadata as
    lists, each label as a tensor when all its values are numbers (int64 when all are integers,
    such as a class index; else float64 with NaN where missing), else as a list."""
    batch = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if key == "labels":
            batch[key] = {}
            for field in values[0]:
                column = [v[field] for v in values]
                if all(isinstance(v, int) and not isinstance(v, bool) for v in column):
                    batch[key][field] = torch.tensor(column, dtype=torch.int64)
                elif all(v is None or isinstance(v, (int, float)) for v in column) and any(v is not None for v in column):
                    batch[key][field] = torch.tensor([math.nan if v is None else v for v in column], dtype=torch.float64)
                else:
                    batch[key][field] = column
        elif isinstance(values[0], torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise ValueError(f"{key}: a batch mixes shapes {sorted(shapes)}; use BucketBatchSampler")
            batch[key] = torch.stack(values)
        elif isinstance(values[0], bool):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = values
    return batch


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv):
    import argparse

    parser = argparse.ArgumentParser(description="Summarise a latentforge dataset through the loader.")
    parser.add_argument("root")
    parser.add_argument("--split")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    ds = LatentDataset(args.root, split=args.split)
    sampler = BucketBatchSampler(ds, args.batch_size, seed=0)
    print(f"{len(ds)} images in {len(sampler.buckets)} buckets, layout {ds.index['layout']}, flips {ds.flip != 'none'}")
    for name, indices in sorted(sampler.buckets.items()):
        print(f"  {name}: {len(indices)} images, latents {ds.index['buckets'][name]['latent_shape']}")
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate)
    batch = next(iter(loader))
    print(f"first batch: {batch['bucket'][0]}, latents {list(batch['latents'].shape)}, ids {batch['id']}")


if __name__ == "__main__":
    main(sys.argv[1:])
