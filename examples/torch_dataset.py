"""PyTorch loader for latentforge datasets.

Reads a dataset written by `deno task run` (its `package.out_dir`) whatever the layout:
safetensors shards (`package.layout: "shards"`), per-split files (`"split"`: `latents.safetensors`
or `latents.npz`) or one `.npz` per image (`"per_image"`). It depends only on torch and numpy.

Where each image is comes from the dataset's index: `index/`, one memory-mapped `.npy` array per
field (opening a dataset of a million images maps them and reads a small header; a row is decoded
when it is read), or `index.json` for datasets written before `index/` existed. A latent whose
byte offset the index gives is read with one `pread`; otherwise safetensors files are read from
their header (an 8-byte little-endian length, then JSON) and memory-mapped, so a file is never
read whole.

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

This file holds the loader and its two index readers, so that it can be copied alone; hence its
length.
"""

import bisect
import hashlib
import json
import math
import mmap
import os
import struct
import sys

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

SCHEMA_VERSION = 1  # of index.json
COLUMNAR_VERSION = 1  # of index/header.json

_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "I8": "i1", "I16": "<i2", "I32": "<i4", "I64": "<i8", "U8": "u1", "BOOL": "?"}
_CONDITIONING = ("original_size", "crop_coords_top_left", "crop_box", "target_size")
_KINDS = ("latents", "initial_latents", "latents_flipped", "initial_latents_flipped")
_RECORD = ("id", "split", "bucket") + _CONDITIONING + ("crop_coords_top_left_flipped", "labels", "caption", "meta")


class DatasetFormatError(Exception):
    """A dataset file does not hold what its index says."""


class SafetensorsFile:
    """One safetensors file: its header, and its tensors as read-only views of one memory map."""

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
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size > 8 + length else None
        self.metadata = self.header.pop("__metadata__", {})
        self._start = 8 + length
        self._arrays = {}

    def tensor(self, name):
        """The whole tensor as a read-only numpy array over the file (no copy)."""
        if name not in self._arrays:
            if name not in self.header:
                raise DatasetFormatError(f"{self.path}: expected a tensor {name!r}, found {sorted(self.header)}")
            entry = self.header[name]
            dtype = _DTYPES.get(entry["dtype"])
            if dtype is None:
                raise DatasetFormatError(f"{self.path}: tensor {name!r} has dtype {entry['dtype']}, which numpy cannot map")
            begin, end = entry["data_offsets"]
            shape = tuple(entry["shape"])
            count = int(np.prod(shape, dtype=np.int64))
            if end - begin != count * np.dtype(dtype).itemsize:
                raise DatasetFormatError(f"{self.path}: tensor {name!r} spans {end - begin} bytes, not its shape {list(shape)}")
            if count == 0:
                self._arrays[name] = np.zeros(shape, dtype=dtype)
            else:
                self._arrays[name] = np.frombuffer(self._map, dtype=dtype, count=count, offset=self._start + begin).reshape(shape)
        return self._arrays[name]


class _Latents:
    """Reads latents from a dataset's files: by offset where the index gives one (one pread per
    latent), else through the file's header (safetensors) or numpy (npz)."""

    def __init__(self, root):
        self.root = root
        self._fds = {}
        self._open_files = _open_files_budget()
        self._safetensors = {}
        self._npz = {}

    def read(self, file, name, row, offset, shape, size):
        if offset >= 0 and row is not None:
            fd = self._fds.get(file)
            if fd is None:
                fd = self._open(file)
            out = np.empty(shape, dtype="<f4")
            got = os.preadv(fd, [out], offset + row * size) if _PREADV else _pread_into(fd, out, offset + row * size)
            if got != size:
                raise DatasetFormatError(f"{file}: expected {size} bytes of {name} row {row} at byte {offset + row * size}, found {got}")
            return torch.from_numpy(out)
        path = os.path.join(self.root, file)
        if path.endswith(".safetensors"):
            f = self._safetensors.get(path)
            if f is None:
                f = self._safetensors[path] = SafetensorsFile(path)
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
            raise DatasetFormatError(f"{file}: this loader reads .safetensors and .npz files (add one of those to package.formats)")
        return torch.from_numpy(np.array(array, dtype=array.dtype, copy=True))

    def _open(self, file):
        if len(self._fds) >= self._open_files:
            # The file opened first is closed; a file read again is opened again.
            os.close(self._fds.pop(next(iter(self._fds))))
        fd = self._fds[file] = os.open(os.path.join(self.root, file), os.O_RDONLY | getattr(os, "O_BINARY", 0))
        return fd

    def __del__(self):
        for fd in self._fds.values():
            os.close(fd)


def _open_files_budget():
    """How many files to keep open for reads by offset: a quarter of the process's limit (the
    rest is the program's), so that a set of a few thousand shards is opened once."""
    try:
        import resource
    except ImportError:  # not on Unix: no limit to ask, keep a modest number
        return 64
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 4096 if soft == resource.RLIM_INFINITY else max(16, min(soft // 4, 4096))


_PREADV = hasattr(os, "preadv")


def _pread_into(fd, array, offset):
    # Without preadv (Windows): a seek and a read, which a DataLoader's worker processes allow.
    os.lseek(fd, offset, os.SEEK_SET)
    data = os.read(fd, array.nbytes)
    array.reshape(-1).view(np.uint8)[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    return len(data)


class _Texts:
    """A text column of the index: row i is utf8[offsets[i]:offsets[i + 1]]."""

    def __init__(self, offsets, utf8):
        self._offsets = offsets
        self._utf8 = utf8

    def __getitem__(self, i):
        return self._utf8[self._offsets[i] : self._offsets[i + 1]].tobytes().decode("utf-8")


class ColumnIndex:
    """The columnar index (`index/`): a header and memory-mapped arrays, one row per image."""

    def __init__(self, root):
        folder = os.path.join(root, "index")
        with open(os.path.join(folder, "header.json"), encoding="utf-8") as f:
            self.header = header = json.load(f)
        if header.get("format") != "latentforge-index" or header.get("schema_version") != COLUMNAR_VERSION:
            raise DatasetFormatError(f"{folder}/header.json: expected latentforge-index version {COLUMNAR_VERSION}, found {header.get('format')} {header.get('schema_version')}")
        self.a = {}
        for name, spec in header["arrays"].items():
            # numpy cannot map an empty file region: an empty array is read as it is.
            array = np.load(os.path.join(folder, name + ".npy"), mmap_mode="r" if math.prod(spec["shape"]) else None)
            if array.dtype != np.dtype(spec["dtype"]) or list(array.shape) != spec["shape"]:
                raise DatasetFormatError(f"index/{name}.npy: expected {spec['dtype']} {spec['shape']}, found {array.dtype.str} {list(array.shape)}")
            # A plain ndarray over the map: indexing it skips np.memmap's Python-level wrapper.
            self.a[name] = np.asarray(array)
        self.n = header["images"]
        self.flip = header["flip"]
        self.layout = header["layout"]
        self.class_to_idx = header.get("class_to_idx", {})
        self.splits = {s["name"]: range(s["start"], s["start"] + s["images"]) for s in header["splits"]}
        self._split_starts = [s["start"] for s in header["splits"]]
        self._split_names = [s["name"] for s in header["splits"]]
        self.buckets = [b["name"] for b in header["buckets"]]
        self.bucket_info = {b["name"]: b for b in header["buckets"]}
        self._tensors = [b["tensors"] for b in header["buckets"]]
        self._shapes = [tuple(b["latent_shape"]) for b in header["buckets"]]
        self._sizes = [4 * math.prod(b["latent_shape"]) for b in header["buckets"]]
        self._ids = self._texts("id")
        self._paths = self._texts("files.path")
        self._caption = self._texts("caption") if "caption.offsets" in self.a else None
        self._meta = self._texts("meta") if "meta.offsets" in self.a else None
        self._labels = []
        for field, kind in header["label_fields"].items():
            values = self._texts(f"label_{field}.values") if kind == "text" else None
            self._labels.append((field, kind, self._array(f"label_{field}"), values, {}))
        self._files = {}
        self._file_column, self._row_column, self._bucket_column = (self._array(k) for k in ("file", "row", "bucket"))
        self._get = self._getters()

    def _array(self, name):
        if name not in self.a:
            raise DatasetFormatError(f"index/header.json: expected the array {name}, found {sorted(self.a)}")
        return self.a[name]

    def _texts(self, name):
        return _Texts(self._array(name + ".offsets"), self._array(name + ".utf8"))

    def files(self):
        """(path, sha256) of every file the index names."""
        sha = self.a["files.sha256"]
        return [(self._paths[k], sha[k].tobytes().hex()) for k in range(self.header["files"])]

    def bucket_codes(self, positions):
        return np.asarray(self.a["bucket"][positions.start : positions.stop]) if isinstance(positions, range) else self.a["bucket"][positions]

    def encoder_only(self):
        return any("initial_latents" not in t for t in self._tensors)

    def place(self, j):
        """(file, row, tensors, offsets, latent shape, its bytes) of image j."""
        code = int(self._file_column[j])
        known = self._files.get(code)
        if known is None:
            known = self._files[code] = (self._paths[code], [int(o) for o in self.a["files.offsets"][code]])
        row = int(self._row_column[j])
        bucket = int(self._bucket_column[j])
        return known[0], (None if row < 0 else row), self._tensors[bucket], known[1], self._shapes[bucket], self._sizes[bucket]

    def _getters(self):
        a, starts, names = self.a, self._split_starts, self._split_names
        get = {
            "id": self._ids.__getitem__,
            "split": lambda j: names[bisect.bisect_right(starts, j) - 1],
            "bucket": lambda j: self.buckets[int(a["bucket"][j])],
            "labels": lambda j: {field: _label(kind, column[j], values, cache) for field, kind, column, values, cache in self._labels},
            "caption": (lambda j: self._caption[j]) if self._caption is not None else (lambda j: ""),
            "meta": (lambda j: json.loads(self._meta[j] or "{}")) if self._meta is not None else (lambda j: {}),
        }
        for key in _CONDITIONING + (("crop_coords_top_left_flipped",) if self.flip else ()):
            get[key] = lambda j, column=self._array(key): torch.from_numpy(column[j].astype(np.int64))
        return get

    def record(self, j, keys):
        """The fields `keys` of image j (none of them latents), as the dataset's items give them."""
        get = self._get
        return {key: get[key](j) for key in keys}

    def entry(self, j):
        """Image j as `index.json` describes an image."""
        file, row, tensors = self.place(j)[:3]
        item = self.record(j, [k for k in _RECORD if k in self._get])
        entry = {"id": item["id"], "split": item["split"], "bucket": item["bucket"], "file": file, "row": row, "tensors": tensors}
        for key in _CONDITIONING + (("crop_coords_top_left_flipped",) if self.flip else ()):
            entry[key] = item[key].tolist()
        entry["labels"] = item["labels"]
        if item["caption"]:
            entry["caption"] = item["caption"]
        if item["meta"]:
            entry["meta"] = item["meta"]
        return entry


def _label(kind, value, values, cache):
    if kind == "number":
        value = float(value)
        return None if value != value else value
    value = int(value)
    if value < 0:
        return None
    if kind == "integer":
        return value
    if value not in cache:
        cache[value] = values[value]
    return cache[value]


class JsonIndex:
    """`index.json`: one JSON entry per image (every dataset written before `index/` existed)."""

    def __init__(self, root):
        with open(os.path.join(root, "index.json"), encoding="utf-8") as f:
            self.header = json.load(f)
        version = self.header.get("schema_version")
        if version != SCHEMA_VERSION:
            raise DatasetFormatError(f"{root}/index.json: expected schema_version {SCHEMA_VERSION}, found {version}")
        self.images = self.header["images"]
        self.n = len(self.images)
        self.flip = self.header["flip"]
        self.layout = self.header["layout"]
        self.class_to_idx = self.header.get("class_to_idx", {})
        self.splits = {}
        for j, image in enumerate(self.images):
            self.splits.setdefault(image["split"], []).append(j)
        self.buckets = sorted(self.header["buckets"])
        self.bucket_info = self.header["buckets"]
        code = {name: k for k, name in enumerate(self.buckets)}
        self._codes = np.array([code[im["bucket"]] for im in self.images], dtype=np.int32)

    def files(self):
        return [(f["file"], f["sha256"]) for f in self.header["files"]]

    def bucket_codes(self, positions):
        return self._codes[np.asarray(positions, dtype=np.int64)]

    def encoder_only(self):
        return any("initial_latents" not in im["tensors"] for im in self.images[:1])

    def place(self, j):
        image = self.images[j]
        return image["file"], image["row"], image["tensors"], (-1, -1, -1, -1), None, 0

    def record(self, j, keys):
        image, item = self.images[j], {}
        for key in keys:
            if key in ("labels", "meta"):
                item[key] = dict(image.get(key, {}))
            else:
                value = image.get(key, "")
                item[key] = value if key in ("id", "split", "bucket", "caption") else torch.tensor(value, dtype=torch.int64)
        return item

    def entry(self, j):
        return self.images[j]


def open_index(root):
    """The dataset's index: `index/` when it has one, else `index.json`."""
    if os.path.exists(os.path.join(root, "index", "header.json")):
        return ColumnIndex(root)
    return JsonIndex(root)


class _Images:
    """The index entries of a dataset's images, decoded one at a time when asked for."""

    def __init__(self, index, positions):
        self._index = index
        self._positions = positions

    def __len__(self):
        return len(self._positions)

    def __getitem__(self, i):
        return self._index.entry(self._positions[i])


class LatentDataset(Dataset):
    """The images of a latentforge dataset, as dicts of tensors, conditioning and labels.

    root: the dataset directory (with `index/` or `index.json`).
    split: one split's images (e.g. "train", "female"), or None for all.
    flip: "pair" (default) gives `latents_flipped` beside `latents` when the dataset has flips;
        "expand" makes each flipped latent an item of its own (twice the items; `flipped` says
        which, and `crop_coords_top_left` is the flipped image's); "none" ignores flips.
    initial: also give `initial_latents` (the encoder's latent before optimization; a dataset
        built with optimize.method "none" has only `latents`, which are the encoder's).
    verify: check every file's sha256 against the index before reading (slow for big datasets).
    fields: the keys each item has, or None for all: `fields=("latents", "labels")` reads and
        decodes nothing else (a latent alone costs little more than a row of a numpy array).

    `class_to_idx` maps class names to the indices in `labels["class"]` (class-folder datasets,
    as torchvision's ImageFolder; empty otherwise); `classes` lists the names in index order.
    `images[i]` is image i's entry in the index (file, row, tensor names, conditioning, labels),
    read without its latents; `index` the opened index (`layout`, `buckets`, `bucket_info`).
    """

    def __init__(self, root, split=None, flip="pair", initial=False, verify=False, fields=None):
        self.root = root
        if flip not in ("pair", "expand", "none"):
            raise ValueError(f"flip: expected 'pair', 'expand' or 'none', found {flip!r}")
        self.index = index = open_index(root)
        self.flip = flip if index.flip else "none"
        self.class_to_idx = dict(index.class_to_idx)
        self.classes = sorted(self.class_to_idx, key=self.class_to_idx.get)
        if initial and index.encoder_only():
            raise ValueError("initial: this dataset holds the encoder's latents only (optimize.method \"none\"): use latents")
        self.initial = initial
        if split is None:
            self._positions = range(index.n)
        elif split in index.splits:
            self._positions = index.splits[split]
        else:
            raise ValueError(f"split {split!r}: expected one of {sorted(index.splits)}")
        self.images = _Images(index, self._positions)
        self._n = len(self._positions) * (2 if self.flip == "expand" else 1)
        self._choose(fields)
        if verify:
            for file, sha256 in index.files():
                digest = _sha256(os.path.join(root, file))
                if digest != sha256:
                    raise DatasetFormatError(f"{file}: sha256 {digest}, index says {sha256}")
        self._latents = _Latents(root)

    def __len__(self):
        return self._n

    def bucket(self, i):
        """The bucket name (WxH) of item i, without reading it."""
        j = self._positions[i // 2 if self.flip == "expand" else i]
        return self.index.buckets[int(self.index.bucket_codes([j])[0])]

    def bucket_indices(self):
        """Bucket name → the item indices in it (a numpy array, in item order)."""
        codes = self.index.bucket_codes(self._positions)
        if self.flip == "expand":
            codes = np.repeat(codes, 2)
        order = np.argsort(codes, kind="stable")
        found, starts = np.unique(codes[order], return_index=True)
        ends = list(starts[1:]) + [len(order)]
        return {self.index.buckets[int(c)]: order[s:e] for c, s, e in zip(found, starts, ends)}

    def _choose(self, fields):
        latents = [("latents", "latents", "latents_flipped")]
        if self.initial:
            latents.append(("initial_latents", "initial_latents", "initial_latents_flipped"))
        if self.flip == "pair":
            latents += [(k, k, k) for k in ["latents_flipped"] + (["initial_latents_flipped"] if self.initial else [])]
        record = [k for k in _RECORD if k != "crop_coords_top_left_flipped" or self.flip == "pair"]
        given = ["flipped"] + [k for k, _, _ in latents] + record
        if fields is None:
            fields = given
        elif set(fields) - set(given):
            raise ValueError(f"fields: expected some of {given}, found {sorted(set(fields) - set(given))}")
        self._flipped_field = "flipped" in fields
        # (item key, tensor kind, its column in the index's offsets) for plain and flipped items.
        self._latent_fields = [(key, (plain, _KINDS.index(plain)), (flipped, _KINDS.index(flipped))) for key, plain, flipped in latents if key in fields]
        self._keys = [k for k in record if k in fields]
        # A flipped item's crop offset is the flipped image's.
        self._keys_flipped = ["crop_coords_top_left_flipped" if k == "crop_coords_top_left" else k for k in self._keys]

    def __getitem__(self, i):
        n = self._n
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"item {i}: expected 0 to {n - 1}")
        flipped = self.flip == "expand" and i % 2 == 1
        j = self._positions[i // 2 if self.flip == "expand" else i]
        item = self.index.record(j, self._keys_flipped if flipped else self._keys) if self._keys else {}
        if flipped and "crop_coords_top_left" in self._keys:
            item["crop_coords_top_left"] = item.pop("crop_coords_top_left_flipped")
        if self._flipped_field:
            item["flipped"] = flipped
        if self._latent_fields:
            file, row, names, offsets, shape, size = self.index.place(j)
            read = self._latents.read
            for key, plain, mirrored in self._latent_fields:
                kind, column = mirrored if flipped else plain
                if kind not in names:
                    raise DatasetFormatError(f"{file}: expected a tensor {kind!r} for image {j}, the index names {sorted(names)}")
                item[key] = read(file, names[kind], row, offsets[column], shape, size)
        return item

    def __getstate__(self):
        # Open files and maps stay with the process that opened them; a worker opens its own.
        state = dict(self.__dict__)
        state["index"] = state["images"] = state["_latents"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.index = open_index(self.root)
        self.images = _Images(self.index, self._positions)
        self._latents = _Latents(self.root)


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
        self.buckets = dataset.bucket_indices()

    def set_epoch(self, epoch):
        self.epoch = epoch

    def _batches(self):
        """Every batch as a numpy array of item indices, in the epoch's order."""
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        batches = []
        for name in sorted(self.buckets):
            indices = self.buckets[name]
            if self.shuffle:
                indices = indices[torch.randperm(len(indices), generator=generator).numpy()]
            ends = range(self.batch_size, len(indices) + self.batch_size, self.batch_size)
            batches += [indices[end - self.batch_size : end] for end in ends if end <= len(indices) or not self.drop_last]
        if self.shuffle:
            batches = [batches[j] for j in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def __iter__(self):
        return (batch.tolist() for batch in self._batches())

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
    print(f"{len(ds)} images in {len(sampler.buckets)} buckets, layout {ds.index.layout}, flips {ds.flip != 'none'}")
    for name, indices in sorted(sampler.buckets.items()):
        print(f"  {name}: {len(indices)} images, latents {ds.index.bucket_info[name]['latent_shape']}")
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate)
    batch = next(iter(loader))
    print(f"first batch: {batch['bucket'][0]}, latents {list(batch['latents'].shape)}, ids {batch['id']}")


if __name__ == "__main__":
    main(sys.argv[1:])
