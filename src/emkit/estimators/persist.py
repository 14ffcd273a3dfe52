"""Safe model files: one zip archive of JSON metadata and ``.npy`` arrays — no pickled objects.

Layout of a model file (schema version 2)::

    emkit.json            metadata (below)
    arrays/<name>.npy     one fitted array attribute each, e.g. arrays/means_.npy
    params/<name>.npy     array-valued constructor parameters, e.g. params/means_init.npy

``emkit.json`` holds ``format`` (``"emkit-model"``), ``schema_version``, ``emkit_version``,
``estimator`` (the class name), ``params`` (the JSON-safe constructor parameters), ``notes``
(what could not be stored, e.g. a ``random_state`` Generator), ``attributes`` (fitted scalars such
as ``converged_`` and ``n_iter_``), and ``arrays`` / ``param_arrays`` (dtype, shape and CRC-32 of
the values of every array member; version 1, which this emkit still reads, has no CRC-32).

Why this is safe to load from an untrusted source: nothing is unpickled — an array's ``.npy``
header is parsed and checked (numeric dtype, the shape and dtype announced in the metadata), then
its bytes are read into an empty array; the class to build is looked up in a fixed registry
(:data:`ESTIMATORS`), never imported by a name taken from the file; member names must be exactly
the expected ones (no paths); only a regular file is opened (never a pipe or a device). Loading
cannot allocate much more than the model the file describes: before any array is read, the
archive's directory is bounded (``MAX_MEMBERS``), every array's announced shape is compared with
the shape the estimator's stored parameters give (``means_`` of ``n_components`` ×
``n_features_in_``, :attr:`EstimatorSpec.shapes`), and with the member's size, which must lie
within the file (arrays are stored uncompressed; a compressed member may not expand more than
``MAX_EXPANSION`` times); arrays are then read in 1 MiB pieces straight into their buffers. The
restored model is validated (shapes, finite values, weights summing to one) before it is
returned. A member holding other values than the metadata describe for its name (damaged, or
swapped with another member of the same shape) is refused by its CRC-32. Anything else raises
:class:`emkit.errors.ModelFileError` with a one-line reason.

Files are written atomically: to a temporary file in the target's folder, flushed and fsynced,
then renamed over the target, so a crash never leaves a half-written model behind.

Later models register themselves with :func:`register_estimator`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib import format as npformat

from emkit import __version__
from emkit.core.atomic import write_atomically
from emkit.errors import ModelFileError, NotFittedError, ParameterError
from emkit.families import parsimonious

__all__ = ["FORMAT_NAME", "SCHEMA_VERSION", "ESTIMATORS", "EstimatorSpec", "save", "load",
           "describe", "register_estimator"]

FORMAT_NAME = "emkit-model"
# 2: every array's description holds the CRC-32 of its values (``crc32``); version 1 lacks it.
SCHEMA_VERSION = 2
METADATA_MEMBER = "emkit.json"

#: Largest metadata member accepted (bytes); real metadata is a few kilobytes.
MAX_METADATA_BYTES = 1 << 20
#: Largest array member accepted (bytes): a guard against archives that announce huge sizes.
MAX_ARRAY_BYTES = 1 << 31
#: Largest ratio of a member's size to its compressed size, beyond the first MAX_METADATA_BYTES
#: (metadata may be repetitive): emkit stores arrays uncompressed; deflate reaches 1000:1 on
#: crafted data.
MAX_EXPANSION = 64

#: Most members and central-directory bytes an archive may announce: emkit writes one metadata
#: member and a few dozen arrays, and parsing a directory builds an object per member.
MAX_MEMBERS = 256
MAX_DIRECTORY_BYTES = 1 << 16
#: Largest .npy header accepted (numpy's own limit for untrusted headers is 10 KiB).
_NPY_HEADER_BYTES = 1 << 16
#: Arrays are read in pieces of this size: the zip reader copies each piece once.
_READ_BYTES = 1 << 20

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
# Plain numbers only: no objects, strings, structured records or datetimes.
_NUMERIC_KINDS = "biuf"
# A fixed timestamp makes the same model produce the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class EstimatorSpec:
    """How to store one estimator class.

    Attributes
    ----------
    target : str
        ``"module:Class"`` of the class; only registered targets are ever imported.
    attributes : mapping of str to str
        Fitted attribute name -> kind: ``"array"`` (numeric ndarray), ``"float_list"`` (a list of
        floats, stored as an array), ``"bool"``, ``"int"``, ``"int_array"`` (a short 1-D integer
        array, kept in the metadata), ``"float"``, ``"events"`` (a list of (int, str) pairs) or
        ``"names"`` (an array of strings, e.g. ``feature_names_in_``).
    optional : frozenset of str
        Attributes that a fitted estimator may lack (e.g. ``feature_names_in_``).
    check : callable, optional
        ``check(estimator)`` validates a fitted estimator (shapes, values) and raises
        :class:`ValueError` saying what is wrong. It runs before saving and after loading.
    shapes : callable, optional
        ``shapes(params, attributes)`` -> {array name: expected shape}, from the stored
        constructor parameters and fitted scalars (e.g. ``n_components``, ``n_features_in_``);
        ``None`` in a shape is a length the metadata do not fix. Loading compares every array's
        announced shape with it before reading any array, so a damaged file cannot make
        :func:`load` allocate more than the model it describes. It raises KeyError, TypeError
        or ValueError when the metadata it needs are missing or invalid.
    """

    target: str
    attributes: Mapping[str, str]
    optional: frozenset[str] = field(default_factory=frozenset)
    check: Callable[[Any], None] | None = None
    shapes: Callable[[Mapping[str, Any], Mapping[str, Any]],
                     Mapping[str, tuple[int | None, ...]]] | None = None


ESTIMATORS: dict[str, EstimatorSpec] = {}

# Modules that register their estimators when imported. Loading a file imports these (a fixed
# list in code, never a name read from a file) so that ``import emkit`` stays light.
_REGISTERING_MODULES: tuple[str, ...] = (
    "emkit.estimators.fixed_mixture", "emkit.estimators.hmm", "emkit.estimators.superimposed",
    "emkit.estimators.compound_dirichlet", "emkit.estimators.poisson_mixture",
    "emkit.estimators.latent_class", "emkit.estimators.regression_mixture",
    "emkit.estimators.student_mixture")


def _registry() -> dict[str, EstimatorSpec]:
    """Every registered estimator, importing the registering modules on first use."""
    for module in _REGISTERING_MODULES:
        importlib.import_module(module)
    return ESTIMATORS


def register_estimator(name: str, spec: EstimatorSpec) -> None:
    """Allow estimator class ``name`` to be saved and loaded as described by ``spec``."""
    if not _NAME.fullmatch(name):
        raise ParameterError(f"estimator name {name!r} must be a Python identifier.")
    unknown = {kind for kind in spec.attributes.values() if kind not in _KINDS}
    if unknown:
        raise ParameterError(f"unknown attribute kind(s) {sorted(unknown)}; use one of "
                             f"{sorted(_KINDS)}.")
    if spec.shapes is None and name in _BUILTIN_SHAPES:
        spec = dataclasses.replace(spec, shapes=_BUILTIN_SHAPES[name])
    ESTIMATORS[name] = spec


# --------------------------------------------------------------------------- public API
def save(estimator: Any, path: str | os.PathLike) -> None:
    """Write a fitted estimator to ``path`` (see the module docstring for the format).

    Parameters
    ----------
    estimator : a fitted estimator of a registered class (e.g. :class:`emkit.GaussianMixture`)
    path : str or path-like
        The file to (over)write; ``.emkit`` is the customary suffix.

    Raises
    ------
    NotFittedError
        The estimator is not fitted.
    ParameterError
        Its class cannot be saved, or its fitted state is invalid.
    ModelFileError
        The file cannot be written (the previous file at ``path``, if any, is left untouched).
    """
    name, spec = _spec_of(estimator)
    missing = [a for a in spec.attributes if a not in spec.optional and not hasattr(estimator, a)]
    if missing:
        raise NotFittedError(f"This {name} is not fitted yet (no {missing[0]}): call fit(X) "
                             "before saving it.")
    try:
        _check_estimator(spec, estimator)
    except ModelFileError as error:
        raise ParameterError(f"cannot save this {name}: {error}") from error
    metadata, members = _encode(name, spec, estimator)
    if os.path.isdir(path):
        raise ModelFileError(f"cannot write the model to {path}: it is a directory.")
    try:
        write_atomically(path, lambda stream: _write_zip(stream, metadata, members))
    except OSError as error:
        raise ModelFileError(f"cannot write the model to {path}: "
                             f"{error.strerror or error}.") from error


def load(path: str | os.PathLike) -> Any:
    """Read a model file written by :func:`save` and return the fitted estimator.

    Nothing in the file is executed: it holds only JSON and plain numeric arrays, and the class
    comes from emkit's registry. Predictions of the loaded estimator equal the saved one's exactly.

    Raises
    ------
    ModelFileError
        The file is missing, truncated, not an emkit model file, of a newer schema version, or
        its contents are inconsistent.
    """
    path = os.fspath(path)
    with _open_archive(path) as archive:
        metadata = _read_metadata(archive, path)
        spec = _registry()[metadata["estimator"]]
        # Everything that bounds what reading allocates is checked before any array is read.
        _check_expected_shapes(spec, metadata, path)
        _check_stored_sizes(archive, metadata, path)
        arrays = {name: _read_array(archive, f"arrays/{name}.npy", info, path)
                  for name, info in metadata["arrays"].items()}
        param_arrays = {name: _read_array(archive, f"params/{name}.npy", info, path)
                        for name, info in metadata["param_arrays"].items()}
    estimator = _build(metadata, spec, arrays, param_arrays, path)
    try:
        _check_estimator(spec, estimator)
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}") from None
    return estimator


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """Metadata of a model file (estimator class, parameters, array shapes), without reading
    the arrays or building the estimator. The result is a JSON-safe dict.

    Raises
    ------
    ModelFileError
        As :func:`load`, for problems found in the metadata.
    """
    path = os.fspath(path)
    with _open_archive(path) as archive:
        metadata = _read_metadata(archive, path)
    metadata["file_size"] = os.path.getsize(path)
    return metadata


# --------------------------------------------------------------------------- encoding
def _spec_of(estimator: Any) -> tuple[str, EstimatorSpec]:
    cls = type(estimator)
    for name, spec in ESTIMATORS.items():
        module_name, _, class_name = spec.target.partition(":")
        if cls.__module__ == module_name and cls.__qualname__ == class_name:
            return name, spec
    raise ParameterError(f"emkit cannot save a {cls.__name__}: the model file format knows "
                         f"{', '.join(sorted(ESTIMATORS))}.")


def _encode(name: str, spec: EstimatorSpec, estimator: Any) -> tuple[dict, dict[str, np.ndarray]]:
    """The metadata dict and the array members of ``estimator``."""
    members: dict[str, np.ndarray] = {}
    notes: list[str] = []
    params: dict[str, Any] = {}
    param_arrays: dict[str, dict] = {}
    for key, value in sorted(estimator.get_params(deep=False).items()):
        encoded = _encode_param(key, value, notes)
        if isinstance(encoded, np.ndarray):
            members[f"params/{key}.npy"] = encoded
            param_arrays[key] = _array_info(encoded)
        elif encoded is not _DROP:
            params[key] = encoded
    attributes: dict[str, Any] = {}
    arrays: dict[str, dict] = {}
    for attribute, kind in spec.attributes.items():
        if not hasattr(estimator, attribute):
            continue
        value = _KINDS[kind][0](getattr(estimator, attribute))
        if isinstance(value, np.ndarray):
            members[f"arrays/{attribute}.npy"] = value
            arrays[attribute] = _array_info(value)
        else:
            attributes[attribute] = value
    metadata = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "emkit_version": __version__,
        "estimator": name,
        "params": params,
        "notes": notes,
        "attributes": attributes,
        "arrays": arrays,
        "param_arrays": param_arrays,
    }
    return metadata, members


_DROP = object()


def _encode_param(key: str, value: Any, notes: list[str]) -> Any:
    """A JSON-safe form of a constructor parameter, an ndarray to store, or ``_DROP``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if math.isfinite(value):
            return float(value)
    elif isinstance(value, np.dtype) or (isinstance(value, type)
                                         and issubclass(value, np.generic)):
        dtype = np.dtype(value)
        if dtype.kind in _NUMERIC_KINDS:
            return {"numpy_dtype": dtype.name}
    elif isinstance(value, (list, tuple, np.ndarray)):
        try:
            array = np.asarray(value)
        except ValueError:  # ragged
            array = None
        if array is not None and array.dtype.kind in _NUMERIC_KINDS and np.all(
                np.isfinite(array)):
            return np.ascontiguousarray(array) if isinstance(value, np.ndarray) or array.ndim > 1 \
                else array.tolist()
    if key == "random_state":
        notes.append(f"random_state ({type(value).__name__}) was not stored; it loads as None, "
                     "so a refit is not reproducible.")
    else:
        notes.append(f"parameter {key}={value!r:.60} was not stored; it loads as the default.")
    return _DROP


def _decode_param(key: str, value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) != {"numpy_dtype"} or not isinstance(value["numpy_dtype"], str):
            raise ModelFileError(f"parameter {key} has an unknown encoding {value!r:.80}.")
        try:
            dtype = np.dtype(value["numpy_dtype"])
        except (TypeError, ValueError, SyntaxError):
            raise ModelFileError(f"parameter {key} names an unknown dtype "
                                 f"{value['numpy_dtype']!r:.40}.") from None
        if dtype.kind not in _NUMERIC_KINDS:
            raise ModelFileError(f"parameter {key} names a non-numeric dtype {dtype}.")
        return dtype.type
    return value


def _array_info(array: np.ndarray) -> dict:
    # The CRC-32 of the values (C order) ties each member to its name in the metadata: the zip
    # format's own CRC only says a member is intact, not that it is the array it claims to be.
    return {"dtype": array.dtype.str, "shape": list(array.shape),
            "crc32": zlib.crc32(np.ascontiguousarray(array))}


def _numeric_array(value: Any) -> np.ndarray:
    array = np.ascontiguousarray(value)
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise ParameterError(f"cannot store an array of dtype {array.dtype}: only numbers.")
    return array


def _restore_events(value: Any) -> list[tuple[int, str]]:
    if not isinstance(value, list) or not all(
            isinstance(item, list) and len(item) == 2 and _is_int(item[0])
            and isinstance(item[1], str) for item in value):
        raise ValueError("must be a list of [iteration, message] pairs")
    return [(int(item[0]), item[1]) for item in value]


def _restore_names(value: Any) -> np.ndarray:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of strings")
    return np.asarray(value, dtype=object)


def _restore_scalar(kind: type | tuple[type, ...]) -> Callable[[Any], Any]:
    def restore(value: Any) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise ValueError(f"must be a number, not {value!r}")
        if not isinstance(value, kind):
            raise ValueError(f"has the wrong type ({type(value).__name__})")
        return value
    return restore


def _restore_float_list(value: Any) -> list:
    if not isinstance(value, np.ndarray) or value.ndim != 1:
        raise ValueError("must be a 1-D array")
    return list(value)


def _restore_int_array(value: Any) -> np.ndarray:
    if not isinstance(value, list) or not all(_is_int(item) for item in value):
        raise ValueError("must be a list of integers")
    return np.asarray(value, dtype=np.int64)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# kind -> (encode: attribute value -> JSON value or ndarray, restore: stored value -> attribute)
_KINDS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "array": (_numeric_array, lambda value: value),
    "float_list": (lambda value: np.asarray(value, dtype=np.float64), _restore_float_list),
    "bool": (bool, _restore_scalar(bool)),
    "int": (int, _restore_scalar(int)),
    "float": (float, _restore_scalar((int, float))),
    "events": (lambda value: [[int(i), str(message)] for i, message in value], _restore_events),
    "names": (lambda value: [str(name) for name in value], _restore_names),
    # a short 1-D array of integers (e.g. the levels of each item), kept in the metadata
    "int_array": (lambda value: [int(item) for item in np.asarray(value).ravel()],
                  _restore_int_array),
}


# --------------------------------------------------------------------------- writing
def _write_zip(stream, metadata: dict, members: dict[str, np.ndarray]) -> None:
    try:
        text = json.dumps(metadata, indent=1, sort_keys=True, allow_nan=False)
    except ValueError as error:  # a non-finite float: the checks should have refused it
        raise ParameterError(f"cannot store the model's metadata: {error}") from error
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr(_zip_info(METADATA_MEMBER), text.encode("utf-8"))
        for name, array in members.items():
            # Arrays are stored uncompressed: fitted parameters barely compress, and a member's
            # size in the file then bounds what reading it allocates (no zip bombs).
            with archive.open(_zip_info(name, zipfile.ZIP_STORED), "w") as member:
                npformat.write_array(member, array, allow_pickle=False)


def _zip_info(name: str, compression: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = compression
    info.external_attr = 0o644 << 16
    return info


# --------------------------------------------------------------------------- reading
@contextlib.contextmanager
def _open_archive(path: str):
    stream = _open_regular_file(path)
    try:
        _check_directory(stream, path)
        archive = zipfile.ZipFile(stream)
    except ModelFileError:
        stream.close()
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as error:
        stream.close()
        raise ModelFileError(f"{path} is not an emkit model file (not a complete zip archive: "
                             f"{error}); it may be truncated.") from None
    except OSError as error:
        stream.close()
        raise ModelFileError(f"cannot read {path}: {error.strerror or error}.") from None
    with stream, archive:
        try:
            yield archive
        except ModelFileError:
            raise
        except MemoryError:
            raise ModelFileError(f"{path} announces more data than this machine's memory "
                                 "holds: not a model file emkit wrote.") from None
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
                NotImplementedError, RuntimeError) as error:  # damaged or unsupported member data
            raise ModelFileError(f"{path} is damaged or truncated: {error}.") from None


def _open_regular_file(path: str):
    """``path`` opened for reading, if it is a regular file (after following links): a FIFO
    would block the reader forever, a device such as /dev/zero feed it without end."""
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ModelFileError(f"model file {path} does not exist.") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path} is a directory, not a model file.") from None
    except OSError as error:
        raise ModelFileError(f"cannot read {path}: {error.strerror or error}.") from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a pipe, device " \
            "or socket)"
        raise ModelFileError(f"{path} is {kind}, not a model file.")
    return os.fdopen(descriptor, "rb")


def _check_directory(stream, path: str) -> None:
    """Refuse, from the end-of-central-directory record and before :mod:`zipfile` parses the
    directory, an archive announcing more members or a larger directory than emkit writes, or
    a zip64 archive (emkit never writes one). A stream that is no zip archive is left to
    :mod:`zipfile` to refuse."""
    size = os.fstat(stream.fileno()).st_size
    tail_length = min(size, 22 + 0xFFFF)  # the record (22 bytes) and a comment of 64 KiB at most
    stream.seek(size - tail_length)
    tail = stream.read(tail_length)
    stream.seek(0)
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) - end < 22:
        return
    entries, directory_bytes = struct.unpack_from("<HL", tail, end + 10)
    if end >= 20 and tail[end - 20:end - 16] == b"PK\x06\x07":
        raise ModelFileError(f"{path} is a zip64 archive: not a model file emkit wrote.")
    if entries > MAX_MEMBERS or directory_bytes > MAX_DIRECTORY_BYTES:
        raise ModelFileError(f"{path} announces {entries} members in a directory of "
                             f"{directory_bytes} bytes: not a model file emkit wrote (at most "
                             f"{MAX_MEMBERS} members, {MAX_DIRECTORY_BYTES} bytes).")


def _read_metadata(archive: zipfile.ZipFile, path: str) -> dict[str, Any]:
    """The validated metadata; also checks that the members are exactly the announced ones."""
    infos = {info.filename: info for info in archive.infolist()}
    if len(infos) != len(archive.infolist()):
        raise ModelFileError(f"{path} has duplicate members: not a file emkit wrote.")
    if METADATA_MEMBER not in infos:
        raise ModelFileError(f"{path} is a zip archive but not an emkit model file "
                             f"(no {METADATA_MEMBER}).")
    raw = _read_member(archive, infos[METADATA_MEMBER], MAX_METADATA_BYTES, path)
    try:
        metadata = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ModelFileError(f"{path}: {METADATA_MEMBER} is not valid JSON ({error}).") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path} is not an emkit model file (format is not "
                             f"{FORMAT_NAME!r}).")
    version = metadata.get("schema_version")
    if not _is_int(version) or version < 1:
        raise ModelFileError(f"{path}: invalid schema_version {version!r:.40}.")
    if version > SCHEMA_VERSION:
        raise ModelFileError(
            f"{path} uses model file schema version {version}, but this emkit ({__version__}) "
            f"reads version {SCHEMA_VERSION} at most: upgrade emkit to load it.")
    estimator = metadata.get("estimator")
    if not isinstance(estimator, str) or estimator not in _registry():
        known = ", ".join(sorted(ESTIMATORS))
        raise ModelFileError(f"{path} holds an estimator {estimator!r:.60} that this emkit "
                             f"cannot load (it knows {known}).")
    for key, kind in (("params", dict), ("notes", list), ("attributes", dict),
                      ("arrays", dict), ("param_arrays", dict)):
        if not isinstance(metadata.get(key), kind):
            raise ModelFileError(f"{path}: metadata field {key!r} is missing or not a "
                                 f"{kind.__name__}.")
    expected = {METADATA_MEMBER}
    for folder, key in (("arrays", "arrays"), ("params", "param_arrays")):
        for name, info in metadata[key].items():
            if not _NAME.fullmatch(name):
                raise ModelFileError(f"{path}: invalid array name {name!r:.60}.")
            _check_array_info(info, f"{folder}/{name}", path, version)
            expected.add(f"{folder}/{name}.npy")
    unexpected = sorted(set(infos) - expected)
    if unexpected:
        raise ModelFileError(f"{path} has unexpected member {unexpected[0]!r:.80}: not a file "
                             "emkit wrote.")
    absent = sorted(expected - set(infos))
    if absent:
        raise ModelFileError(f"{path} lacks member {absent[0]!r}: the file is incomplete.")
    return metadata


def _refuse_constant(name: str) -> None:
    raise ValueError(f"non-finite number {name}")


def _check_array_info(info: Any, name: str, path: str, version: int) -> None:
    keys = {"dtype", "shape"} if version < 2 else {"dtype", "shape", "crc32"}
    if not (isinstance(info, dict) and set(info) == keys
            and isinstance(info["dtype"], str) and isinstance(info["shape"], list)
            and (version < 2 or (_is_int(info["crc32"]) and 0 <= info["crc32"] < 1 << 32))
            and len(info["shape"]) <= 32
            and all(_is_int(n) and n >= 0 for n in info["shape"])):
        raise ModelFileError(f"{path}: invalid description of array {name}.")
    try:
        dtype = np.dtype(info["dtype"])
    except (TypeError, ValueError, SyntaxError):
        raise ModelFileError(f"{path}: array {name} has an unknown dtype "
                             f"{info['dtype']!r:.40}.") from None
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        raise ModelFileError(f"{path}: array {name} has dtype {dtype}; model files hold "
                             "numbers only.")
    if math.prod(info["shape"]) * dtype.itemsize > MAX_ARRAY_BYTES:
        raise ModelFileError(f"{path}: array {name} announces {info['shape']} elements, more "
                             f"than a model file may hold ({MAX_ARRAY_BYTES} bytes).")


def _check_member(info: zipfile.ZipInfo, limit: int, path: str) -> None:
    """Refuse a member before reading it: encrypted, of an unknown compression, announcing more
    than ``limit`` bytes, or expanding more than ``MAX_EXPANSION`` times (a zip bomb)."""
    if info.flag_bits & 0x1:
        raise ModelFileError(f"{path}: member {info.filename} is encrypted.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ModelFileError(f"{path}: member {info.filename} uses an unsupported compression.")
    if info.file_size > limit:
        raise ModelFileError(f"{path}: member {info.filename} declares {info.file_size} bytes, "
                             f"more than the {limit} it may hold.")
    if info.file_size > MAX_EXPANSION * info.compress_size + MAX_METADATA_BYTES:
        raise ModelFileError(f"{path}: member {info.filename} would expand {info.file_size} "
                             f"times its {info.compress_size} bytes: not a file emkit wrote.")


def _check_expected_shapes(spec: EstimatorSpec, metadata: dict, path: str) -> None:
    """Every array's announced dtype and shape against what the estimator the metadata describe
    holds (e.g. ``means_`` of ``n_components`` × ``n_features_in_``): a damaged or forged
    header cannot make the reader allocate more than that model."""
    for name, info in metadata["arrays"].items():
        if np.dtype(info["dtype"]).kind != "f":
            raise ModelFileError(f"{path}: fitted array {name} has dtype {info['dtype']}; it "
                                 "must hold floating-point numbers.")
    if spec.shapes is None:
        return
    try:
        expected = spec.shapes(metadata["params"], metadata["attributes"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: the metadata do not describe a {metadata['estimator']}: "
                             f"{str(error).strip(chr(39))}.") from None
    for key in ("arrays", "param_arrays"):
        for name, info in metadata[key].items():
            shape, announced = expected.get(name), tuple(info["shape"])
            if shape is not None and not (len(shape) == len(announced) and all(
                    n is None or n == m for n, m in zip(shape, announced, strict=True))):
                text = "(" + ", ".join("n" if n is None else str(n) for n in shape) + \
                    ("," if len(shape) == 1 else "") + ")"
                raise ModelFileError(
                    f"{path}: {name} should have shape {text} for the {metadata['estimator']} "
                    f"its metadata describe, but the file announces {announced}.")


def _check_stored_sizes(archive: zipfile.ZipFile, metadata: dict, path: str) -> None:
    """Each array member holds, within the file, the bytes of the array it announces: no more
    than that array and a .npy header, exactly its size in the file when stored (emkit stores
    arrays uncompressed), at most ``MAX_EXPANSION`` times it when compressed (older files)."""
    file_size = os.fstat(archive.fp.fileno()).st_size
    for folder, key in (("arrays", "arrays"), ("params", "param_arrays")):
        for name, info in metadata[key].items():
            member = archive.getinfo(f"{folder}/{name}.npy")
            data_bytes = math.prod(info["shape"]) * np.dtype(info["dtype"]).itemsize
            _check_member(member, data_bytes + _NPY_HEADER_BYTES, path)
            if member.file_size < data_bytes:
                raise ModelFileError(f"{path}: member {member.filename} holds {member.file_size} "
                                     f"bytes, too few for the announced {info['dtype']} array "
                                     f"of shape {tuple(info['shape'])}.")
            if member.compress_type == zipfile.ZIP_STORED \
                    and member.compress_size != member.file_size:
                raise ModelFileError(f"{path}: member {member.filename} is stored "
                                     "uncompressed but announces two sizes.")
            if member.header_offset + member.compress_size > file_size:
                raise ModelFileError(f"{path}: member {member.filename} announces "
                                     f"{member.compress_size} bytes, more than the file holds "
                                     "after its start; it is truncated.")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int,
                 path: str) -> bytes:
    _check_member(info, limit, path)
    with archive.open(info) as member:
        data = member.read(limit + 1)  # the size check above trusts the archive; this does not
    if len(data) > limit:
        raise ModelFileError(f"{path}: member {info.filename} is larger than allowed.")
    return data


def _read_array(archive: zipfile.ZipFile, member: str, info: dict, path: str) -> np.ndarray:
    """Read one ``.npy`` member after checking its header against the metadata, straight into
    the array (no intermediate copy of its bytes)."""
    expected_dtype = np.dtype(info["dtype"])
    expected_shape = tuple(info["shape"])
    data_bytes = math.prod(expected_shape) * expected_dtype.itemsize
    zip_info = archive.getinfo(member)  # its sizes were checked by _check_stored_sizes
    with archive.open(zip_info) as stream:
        try:
            version = npformat.read_magic(stream)
            if version not in ((1, 0), (2, 0), (3, 0)):
                raise ValueError(f"unsupported .npy version {version}")
            reader = (npformat.read_array_header_1_0 if version == (1, 0)
                      else npformat.read_array_header_2_0)
            shape, fortran_order, dtype = reader(stream, max_header_size=1 << 16)
        except (ValueError, EOFError, SyntaxError, TypeError) as error:
            raise ModelFileError(f"{path}: {member} is not a valid .npy array "
                                 f"({error}).") from None
        if dtype != expected_dtype or tuple(shape) != expected_shape:
            raise ModelFileError(f"{path}: {member} holds {dtype} {tuple(shape)}, but the "
                                 f"metadata announces {expected_dtype} {expected_shape}.")
        if zip_info.file_size - stream.tell() != data_bytes:
            raise ModelFileError(f"{path}: {member} is truncated or has trailing data.")
        # A Fortran-ordered array is read as its transpose, which is C-ordered.
        array = np.empty(expected_shape[::-1] if fortran_order else expected_shape, dtype)
        # In pieces: the zip reader reads each piece into a bytes object before copying it.
        view = memoryview(array).cast("B") if data_bytes else memoryview(b"")
        for start in range(0, data_bytes, _READ_BYTES):
            piece = view[start:start + _READ_BYTES]
            if stream.readinto(piece) != len(piece):
                raise ModelFileError(f"{path}: {member} is truncated.")
        if stream.read(1):  # also makes zipfile check the member's CRC-32
            raise ModelFileError(f"{path}: {member} has trailing data.")
    if fortran_order:
        array = np.ascontiguousarray(array.T)
    if "crc32" in info and zlib.crc32(array) != info["crc32"]:
        raise ModelFileError(f"{path}: {member} does not hold the values the metadata describe "
                             "(their CRC-32 differs): the file was damaged or edited.")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ModelFileError(f"{path}: {member} contains NaN or infinite values.")
    return array


def _build(metadata: dict, spec: EstimatorSpec, arrays: dict, param_arrays: dict,
           path: str) -> Any:
    """The estimator described by the validated metadata and arrays."""
    module_name, _, class_name = spec.target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    estimator = cls()
    known = estimator.get_params(deep=False)
    params = {key: _decode_param(key, value) for key, value in metadata["params"].items()}
    params.update(param_arrays)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ModelFileError(f"{path}: {metadata['estimator']} has no parameter "
                             f"{unknown[0]!r:.60}.")
    estimator.set_params(**params)
    stored = {**metadata["attributes"], **arrays}
    extra = sorted(set(stored) - set(spec.attributes))
    if extra:
        raise ModelFileError(f"{path}: unexpected attribute {extra[0]!r:.60} for "
                             f"{metadata['estimator']}.")
    for attribute, kind in spec.attributes.items():
        if attribute not in stored:
            if attribute in spec.optional:
                continue
            raise ModelFileError(f"{path}: the fitted attribute {attribute} is missing.")
        try:
            value = _KINDS[kind][1](stored[attribute])
        except ValueError as error:
            raise ModelFileError(f"{path}: fitted attribute {attribute} {error}.") from None
        setattr(estimator, attribute, value)
    return estimator


def _check_estimator(spec: EstimatorSpec, estimator: Any) -> None:
    try:
        _check_fit_record(estimator)
        if spec.check is not None:
            spec.check(estimator)
    # TypeError: e.g. a parameter of the wrong type; IndexError: an array of too few dimensions
    except (ValueError, TypeError, IndexError) as error:
        raise ModelFileError(str(error)) from None


def _check_fit_record(estimator: Any) -> None:
    """What every EM estimator records of its fit, where it has it: ``n_iter_`` an integer >= 0,
    ``lower_bound_`` finite, ``history_`` and ``restart_objectives_`` 1-D finite numbers."""
    n_iter = getattr(estimator, "n_iter_", 0)
    if not _is_int(n_iter) or n_iter < 0:
        raise ValueError(f"n_iter_ must be an integer >= 0, got {n_iter!r}")
    if not math.isfinite(getattr(estimator, "lower_bound_", 0.0)):
        raise ValueError("lower_bound_ must be finite")
    for name in ("history_", "restart_objectives_"):
        value = getattr(estimator, name, None)
        if value is not None and (not isinstance(value, np.ndarray) or value.ndim != 1
                                  or value.dtype.kind != "f" or not np.all(np.isfinite(value))):
            raise ValueError(f"{name} must be a 1-D array of finite numbers")


# --------------------------------------------------------------------------- expected shapes
def _count(values: Mapping[str, Any], key: str, default: Any = None) -> int:
    """``values[key]`` (or ``default`` where absent), which must be an integer >= 1."""
    value = values.get(key, default)
    if not _is_int(value) or value < 1:
        raise ValueError(f"{key} must be a positive integer, got {value!r:.40}")
    return value


def _covariance_shape(kind: Any, lead: tuple[int, ...], D: int) -> tuple[int, ...]:
    shapes = {"full": (*lead, D, D), "tied": (D, D), "diag": (*lead, D), "spherical": lead}
    if not isinstance(kind, str) or kind not in shapes:
        raise ValueError(f"covariance_type {kind!r:.40} is not one of {sorted(shapes)}")
    return shapes[kind]


def _gaussian_mixture_shapes(params, attributes):
    K, D = _count(params, "n_components"), _count(attributes, "n_features_in_")
    kind = params.get("covariance_type")
    if isinstance(kind, str) and kind in parsimonious.COVARIANCE_TYPES:
        kind = parsimonious.layout(kind)  # mclust's models are stored as one of the four
    covariance = _covariance_shape(kind, (K,), D)
    return {"weights_": (K,), "means_": (K, D), "covariances_": covariance,
            "precisions_cholesky_": covariance, "precisions_": covariance,
            "weights_init": (K,), "means_init": (K, D), "precisions_init": covariance}


def _hmm_shapes(params, attributes, emission):
    K, D = _count(params, "n_components"), _count(attributes, "n_features_in_")
    shapes = {"startprob_": (K,), "transmat_": (K, K)}
    if emission == "gaussian":
        shapes.update(means_=(K, D), covars_=_covariance_shape(params.get("covariance_type"),
                                                                (K,), D))
    elif emission == "gmm":
        M = _count(params, "n_mix")
        shapes.update(weights_=(K, M), means_=(K, M, D),
                      covars_=_covariance_shape(params.get("covariance_type"), (K, M), D))
    elif emission == "categorical":
        if D != 1:
            raise ValueError(f"n_features_in_ of a CategoricalHMM must be 1 (one column of "
                             f"symbol codes), got {D}")
        n_symbols = params.get("n_features")
        shapes["emissionprob_"] = (K, None if n_symbols is None
                                   else _count(params, "n_features"))
    else:
        shapes["lambdas_"] = (K, D)
    return shapes


def _compound_dirichlet_shapes(params, attributes, single):
    K, D = _count(params, "n_components", 1), _count(attributes, "n_features_in_")
    return {"weights_": (K,), "alpha_": (D,) if single else (K, D)}


# Estimators registered elsewhere get their expected shapes here, so that the limits on what
# loading allocates are written once, in the module that reads the files.
_BUILTIN_SHAPES: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], dict]] = {
    "GaussianMixture": _gaussian_mixture_shapes,
    "GaussianHMM": lambda p, a: _hmm_shapes(p, a, "gaussian"),
    "GMMHMM": lambda p, a: _hmm_shapes(p, a, "gmm"),
    "CategoricalHMM": lambda p, a: _hmm_shapes(p, a, "categorical"),
    "PoissonHMM": lambda p, a: _hmm_shapes(p, a, "poisson"),
    "FixedMixture": lambda p, a: {"weights_": (_count(a, "n_components_"),)},
    "SuperimposedSignals": lambda p, a: dict(
        theta_=(_count(p, "n_components"), 3),
        **dict.fromkeys(("frequencies_", "amplitudes_", "phases_"),
                        (_count(p, "n_components"),))),
    "DirichletMultinomialMixture": lambda p, a: _compound_dirichlet_shapes(p, a, False),
    "DirichletMultinomial": lambda p, a: _compound_dirichlet_shapes(p, a, True),
    "Dirichlet": lambda p, a: _compound_dirichlet_shapes(p, a, False),
}


# --------------------------------------------------------------------------- GaussianMixture
def check_mixture_arrays(estimator: Any, expected: Mapping[str, tuple], described: str) -> None:
    """A fitted mixture's arrays: each of ``expected`` (name -> shape; None in a shape: any
    length) of that shape and finite floats, and ``weights_`` a probability vector; raises
    ValueError saying what is wrong. ``described`` finishes "should have shape … for"."""
    for name, shape in expected.items():
        value = getattr(estimator, name)
        if not isinstance(value, np.ndarray) or value.ndim != len(shape) or any(
                want is not None and got != want
                for got, want in zip(value.shape, shape, strict=True)):
            raise ValueError(f"{name} should have shape {shape} for {described}, got "
                             f"{getattr(value, 'shape', type(value).__name__)}")
        if value.dtype.kind != "f" or not np.all(np.isfinite(value)):
            raise ValueError(f"{name} must hold finite floating-point numbers")
    weights = estimator.weights_
    if np.any(weights < 0) or abs(weights.sum() - 1.0) > 1e-8:
        raise ValueError(f"weights_ must be non-negative and sum to 1 (they sum to "
                         f"{weights.sum():.10g})")


def _check_gaussian_mixture(estimator: Any) -> None:
    """Shapes and values of a fitted GaussianMixture; raises ValueError saying what is wrong."""
    try:
        np.dtype(estimator.dtype)
    except (TypeError, ValueError, SyntaxError):
        raise ValueError(f"dtype {estimator.dtype!r:.40} is not a numpy dtype") from None
    estimator._check_parameters()  # a ParameterError is a ValueError
    K = estimator.n_components
    D = estimator.n_features_in_
    kind = parsimonious.layout(estimator.covariance_type)
    if not _is_int(D) or D < 1:
        raise ValueError(f"n_features_in_ must be a positive integer, got {D!r}")
    covariance_shape = {"full": (K, D, D), "tied": (D, D), "diag": (K, D),
                        "spherical": (K,)}[kind]
    expected = {"weights_": (K,), "means_": (K, D), "covariances_": covariance_shape,
                "precisions_cholesky_": covariance_shape, "precisions_": covariance_shape}
    check_mixture_arrays(estimator, expected,
                         f"n_components={K}, {D} features and covariance_type={kind!r}")
    P = estimator.precisions_cholesky_
    scale = np.diagonal(P, axis1=-2, axis2=-1) if kind in ("full", "tied") else P
    if np.any(scale <= 0):
        raise ValueError("precisions_cholesky_ must have a positive diagonal")
    _check_factors_match(estimator.covariances_, P, kind)
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and len(names) != D:
        raise ValueError(f"feature_names_in_ has {len(names)} names for {D} features")


def _check_factors_match(covariances: np.ndarray, factors: np.ndarray, kind: str) -> None:
    """The stored precision Cholesky factors P are those of the stored covariances Σ:
    Pᵀ Σ P = I to a relative 1e-6 (predictions use P, sampling and reports Σ).

    For full matrices the identity is applied to two fixed random vectors v (Pᵀ Σ P v = v, as
    in Freivalds' check): K D² work instead of the K D³ of the products, and matrix-vector
    products that do not start BLAS threads, which on a busy machine made a load of 16 × 100
    × 100 matrices take over a second instead of milliseconds."""
    if kind in ("full", "tied"):
        cov, P = np.atleast_3d(covariances.T).T, np.atleast_3d(factors.T).T  # (K or 1, D, D)
        v = np.random.default_rng(0).standard_normal((cov.shape[-1], 2))
        image = np.einsum("kji,kjr->kir", P,
                          np.einsum("kij,kjr->kir", cov, np.einsum("kij,jr->kir", P, v)))
        mismatch = np.max(np.abs(image - v)) / np.sqrt(np.sum(v**2, axis=0)).max()
    else:
        mismatch = np.max(np.abs(covariances * factors**2 - 1.0))
    if not mismatch < 1e-6:
        raise ValueError("covariances_ and precisions_cholesky_ do not belong together (the "
                         "file was edited or damaged)")


register_estimator("GaussianMixture", EstimatorSpec(
    target="emkit.estimators.gaussian_mixture:GaussianMixture",
    attributes={
        "weights_": "array",
        "means_": "array",
        "covariances_": "array",
        "precisions_cholesky_": "array",
        "precisions_": "array",
        "converged_": "bool",
        "n_iter_": "int",
        "lower_bound_": "float",
        "lower_bounds_": "float_list",
        "history_": "array",
        "events_": "events",
        "restart_objectives_": "array",
        "n_features_in_": "int",
        "feature_names_in_": "names",
    },
    optional=frozenset({"feature_names_in_"}),
    check=_check_gaussian_mixture,
))
