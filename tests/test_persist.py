"""Model files: exact round trips, no pickle anywhere, hostile files refused, atomic writes."""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib

import numpy as np
import pytest

import emkit
from emkit.errors import ModelFileError, NotFittedError, ParameterError
from emkit.estimators import persist
from emkit.estimators.gaussian_mixture import GaussianMixture

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    centers = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0], [0.0, 6.0, 4.0]])
    X = np.concatenate([rng.normal(c, 1.0, size=(80, 3)) for c in centers])
    return rng.permutation(X)


@pytest.fixture(scope="module")
def fitted(data):
    return GaussianMixture(3, random_state=0).fit(data)


@pytest.fixture
def model_file(fitted, tmp_path):
    path = tmp_path / "model.emkit"
    fitted.save(path)
    return path


def assert_same_model(original, loaded, X):
    assert type(loaded) is type(original)
    np.testing.assert_array_equal(loaded.predict(X), original.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))
    np.testing.assert_array_equal(loaded.score_samples(X), original.score_samples(X))
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_",
                 "history_", "restart_objectives_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))
        assert getattr(loaded, name).dtype == getattr(original, name).dtype
    for name in ("converged_", "n_iter_", "lower_bound_", "n_features_in_", "events_",
                 "lower_bounds_"):
        assert getattr(loaded, name) == getattr(original, name), name
    original_params, loaded_params = original.get_params(), loaded.get_params()
    assert original_params.keys() == loaded_params.keys()
    for key, value in original_params.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(loaded_params[key], value)
        else:
            assert loaded_params[key] == value, key


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_round_trip_is_exact_for_every_covariance_type(data, tmp_path, covariance_type):
    original = GaussianMixture(3, covariance_type=covariance_type, random_state=1).fit(data)
    path = tmp_path / f"{covariance_type}.emkit"
    original.save(path)
    loaded = emkit.load(path)
    assert_same_model(original, loaded, data)
    assert loaded.bic(data) == original.bic(data)


def test_round_trip_keeps_float32_mode_and_array_parameters(data, tmp_path):
    means_init = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0], [0.0, 6.0, 4.0]])
    original = GaussianMixture(3, dtype=np.float32, means_init=means_init, annealing=[0.5, 0.8],
                               accelerate="squarem", random_state=3).fit(data)
    path = tmp_path / "float32.emkit"
    persist.save(original, path)
    loaded = persist.load(path)
    assert loaded.dtype is np.float32
    assert loaded.annealing == [0.5, 0.8]
    assert_same_model(original, loaded, data)


def test_round_trip_keeps_feature_names(data, tmp_path):
    names = ["length", "width", "depth"]
    try:
        import pandas as pd

        frame = pd.DataFrame(data, columns=names)
    except ImportError:
        pa = pytest.importorskip("pyarrow")  # a pyarrow Table also carries column names
        frame = pa.table({name: data[:, j] for j, name in enumerate(names)})
    original = GaussianMixture(2, random_state=0).fit(frame)
    assert list(original.feature_names_in_) == names
    path = tmp_path / "named.emkit"
    original.save(path)
    loaded = emkit.load(path)
    assert list(loaded.feature_names_in_) == names
    assert loaded.feature_names_in_.dtype == object
    np.testing.assert_array_equal(loaded.predict_proba(frame), original.predict_proba(frame))
    assert_same_model(original, loaded, frame)


def test_random_state_generator_is_dropped_with_a_note(data, tmp_path):
    original = GaussianMixture(2, random_state=np.random.default_rng(0)).fit(data)
    path = tmp_path / "generator.emkit"
    original.save(path)
    info = persist.describe(path)
    assert "random_state" not in info["params"]
    assert any("random_state" in note for note in info["notes"])
    loaded = emkit.load(path)
    assert loaded.random_state is None
    np.testing.assert_array_equal(loaded.predict_proba(data), original.predict_proba(data))


def test_load_never_unpickles(model_file, fitted, data, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    loaded = emkit.load(model_file)
    np.testing.assert_array_equal(loaded.score_samples(data), fitted.score_samples(data))


def test_file_holds_only_json_and_plain_npy_arrays(model_file, fitted):
    with zipfile.ZipFile(model_file) as archive:
        names = archive.namelist()
        metadata = json.loads(archive.read("emkit.json"))
        for name in names:
            if name == "emkit.json":
                continue
            assert name.startswith(("arrays/", "params/")) and name.endswith(".npy")
            # numpy refuses to unpickle here, so these are plain numeric arrays
            array = np.load(io.BytesIO(archive.read(name)), allow_pickle=False)
            assert array.dtype.kind in "biuf"
    assert metadata["format"] == "emkit-model"
    assert metadata["schema_version"] == persist.SCHEMA_VERSION
    assert metadata["estimator"] == "GaussianMixture"
    assert metadata["emkit_version"] == emkit.__version__
    assert metadata["arrays"]["means_"] == {"dtype": "<f8", "shape": [3, 3],
                                            "crc32": zlib.crc32(fitted.means_)}


def test_describe_reads_metadata_without_building(model_file, monkeypatch):
    monkeypatch.setattr(persist, "_build", lambda *args: pytest.fail("describe built a model"))
    info = persist.describe(model_file)
    assert info["estimator"] == "GaussianMixture"
    assert info["params"]["n_components"] == 3
    assert info["params"]["dtype"] == {"numpy_dtype": "float64"}
    assert info["file_size"] == os.path.getsize(model_file)
    json.dumps(info)  # JSON-safe, for `emkit info --json`


def test_same_model_gives_the_same_bytes(fitted, tmp_path):
    fitted.save(tmp_path / "a.emkit")
    fitted.save(tmp_path / "b.emkit")
    assert (tmp_path / "a.emkit").read_bytes() == (tmp_path / "b.emkit").read_bytes()


def test_saving_an_unfitted_or_unknown_estimator_fails(tmp_path):
    with pytest.raises(NotFittedError, match="not fitted"):
        GaussianMixture(2).save(tmp_path / "unfitted.emkit")
    from sklearn.mixture import GaussianMixture as SklearnMixture

    with pytest.raises(ParameterError, match="cannot save a GaussianMixture"):
        persist.save(SklearnMixture(2), tmp_path / "sklearn.emkit")
    assert list(tmp_path.iterdir()) == []


def test_saving_an_invalid_fitted_state_fails(fitted, tmp_path):
    broken = GaussianMixture(3).set_params(**fitted.get_params())
    for name, value in vars(fitted).items():
        if name.endswith("_"):
            setattr(broken, name, value)
    broken.weights_ = fitted.weights_ * 2
    with pytest.raises(ParameterError, match="sum to 1"):
        broken.save(tmp_path / "broken.emkit")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- bad files
def rewrite(path, metadata_change=None, members_change=None):
    """Rewrite a model file with changed metadata and/or members (a forged file). A careful
    forger: the CRC-32 in the metadata of every replaced array member is that of its new data,
    so the checks behind the CRC are reached."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    metadata = json.loads(members.pop("emkit.json"))
    if metadata_change:
        metadata_change(metadata)
    if members_change:
        before = dict(members)
        members_change(members)
        for folder, key in (("arrays", "arrays"), ("params", "param_arrays")):
            for name, info in metadata.get(key, {}).items():
                raw = members.get(f"{folder}/{name}.npy")
                if isinstance(info, dict) and "crc32" in info and raw is not None \
                        and raw != before.get(f"{folder}/{name}.npy"):
                    info["crc32"] = _data_crc(raw, info["crc32"])
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("emkit.json", json.dumps(metadata))
        for name, raw in members.items():
            archive.writestr(name, raw)


def _data_crc(raw, default):
    """The CRC-32 of the data after a .npy header (``default`` if ``raw`` is no .npy file)."""
    stream = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(stream)
        (np.lib.format.read_array_header_1_0 if version == (1, 0)
         else np.lib.format.read_array_header_2_0)(stream)
    except ValueError:
        return default
    return zlib.crc32(raw[stream.tell():])


def npy_bytes(array, allow_pickle=False):
    stream = io.BytesIO()
    np.save(stream, array, allow_pickle=allow_pickle)
    return stream.getvalue()


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        emkit.load(tmp_path / "nothing.emkit")
    with pytest.raises(ModelFileError, match="directory"):
        emkit.load(tmp_path)


@pytest.mark.parametrize("keep", [0, 10, 200, 0.5, 0.95, -1])
def test_truncated_file(model_file, keep):
    raw = model_file.read_bytes()
    keep = int(len(raw) * keep) if isinstance(keep, float) else keep % len(raw)
    model_file.write_bytes(raw[:keep])
    with pytest.raises(ModelFileError, match="truncated|not an emkit model file"):
        emkit.load(model_file)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.emkit"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ModelFileError, match="not an emkit model file"):
        emkit.load(path)


def test_a_pickle_file_is_refused(fitted, tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(fitted))
    with pytest.raises(ModelFileError, match="not an emkit model file"):
        emkit.load(path)


def test_corrupted_member_data(model_file):
    raw = bytearray(model_file.read_bytes())
    start = raw.index(b"arrays/means_.npy") + len("arrays/means_.npy")  # its local file data
    for i in range(start + 40, start + 60):
        raw[i] ^= 0xFF
    model_file.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError):
        emkit.load(model_file)


_CALLS = []


def _record_call(*args):
    _CALLS.append(args)
    return "pwned"


class _Payload:
    """An object whose unpickling calls _record_call: proves whether pickled data ran."""

    def __reduce__(self):
        return (_record_call, ("unpickled",))


def test_object_array_with_pickled_payload_is_refused_and_never_runs(model_file):
    hostile = np.empty(3, dtype=object)
    hostile[:] = [_Payload(), _Payload(), _Payload()]
    payload = npy_bytes(hostile, allow_pickle=True)

    def announce_object(metadata):
        metadata["arrays"]["weights_"].update(dtype="|O")

    def swap(members):
        members["arrays/weights_.npy"] = payload

    _CALLS.clear()
    rewrite(model_file, members_change=swap)  # metadata still says float64
    with pytest.raises(ModelFileError, match="weights_"):
        emkit.load(model_file)
    rewrite(model_file, metadata_change=announce_object)  # metadata now says object
    with pytest.raises(ModelFileError, match="numbers only"):
        emkit.load(model_file)
    assert _CALLS == []


def test_raw_pickle_as_array_member_is_refused(model_file):
    def swap(members):
        members["arrays/means_.npy"] = pickle.dumps(_Payload())

    _CALLS.clear()
    rewrite(model_file, members_change=swap)
    with pytest.raises(ModelFileError, match="too few for the announced|not a valid .npy"):
        emkit.load(model_file)
    assert _CALLS == []


def test_path_traversal_member_is_refused(model_file, tmp_path):
    def add(members):
        members["../escaped.npy"] = npy_bytes(np.zeros(3))

    rewrite(model_file, members_change=add)
    with pytest.raises(ModelFileError, match="unexpected member"):
        emkit.load(model_file)
    assert not (tmp_path.parent / "escaped.npy").exists()


def test_path_traversal_array_name_is_refused(model_file):
    def change(metadata):
        metadata["arrays"]["../../etc/passwd"] = {"dtype": "<f8", "shape": [1]}

    rewrite(model_file, metadata_change=change)
    with pytest.raises(ModelFileError, match="invalid array name"):
        emkit.load(model_file)


def test_huge_announced_shape_is_refused_before_reading(model_file):
    def change(metadata):
        metadata["arrays"]["means_"]["shape"] = [10**9, 10**6]

    rewrite(model_file, metadata_change=change)
    with pytest.raises(ModelFileError, match="more than a model file may hold"):
        emkit.load(model_file)


def test_huge_declared_member_size_is_refused_before_reading(model_file):
    """Patch the uncompressed size in the central directory: a zip-bomb style lie."""
    with zipfile.ZipFile(model_file) as archive:
        stored = archive.getinfo("arrays/means_.npy")
        assert stored.file_size < 2**32 - 1
    raw = bytearray(model_file.read_bytes())
    name = b"arrays/means_.npy"
    # The last occurrence of the name is in the central directory, after a 46-byte header.
    entry = raw.rindex(name) - 46
    assert raw[entry:entry + 4] == b"PK\x01\x02"
    struct.pack_into("<I", raw, entry + 24, 2**32 - 2)
    model_file.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="declares 4294967294 bytes"):
        emkit.load(model_file)


def test_zip_bomb_is_refused_before_expanding(model_file):
    """A small file whose deflated member announces a consistent but huge array of zeros (the
    shape in the metadata matches the .npy header, and history_ has no length the metadata fix):
    refused by its expansion ratio, at once."""
    shape = [4096 * 8192]  # 256 MiB of float64 zeros deflate to about 256 KiB

    def change(metadata):
        metadata["arrays"]["history_"]["shape"] = shape

    def swap(members):
        members["arrays/history_.npy"] = npy_bytes(np.zeros(shape))

    with zipfile.ZipFile(model_file) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    metadata = json.loads(members.pop("emkit.json"))
    change(metadata)
    swap(members)
    with zipfile.ZipFile(model_file, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("emkit.json", json.dumps(metadata))
        for name, raw in members.items():
            archive.writestr(name, raw)
    assert model_file.stat().st_size < 1 << 20
    started = time.perf_counter()
    with pytest.raises(ModelFileError, match="would expand"):
        emkit.load(model_file)
    assert time.perf_counter() - started < 5.0  # refused from the directory, not by inflating


def test_arrays_are_stored_uncompressed(model_file):
    with zipfile.ZipFile(model_file) as archive:
        for info in archive.infolist():
            if info.filename.endswith(".npy"):
                assert info.compress_type == zipfile.ZIP_STORED
                assert info.compress_size == info.file_size


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX named pipes")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.emkit"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match="not a regular file"):
        emkit.load(fifo)
    with pytest.raises(ModelFileError, match="not a regular file"):
        persist.describe(fifo)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_link_to_a_device_is_refused(tmp_path):
    link = tmp_path / "model.emkit"
    link.symlink_to("/dev/zero")
    with pytest.raises(ModelFileError, match="not a regular file"):
        emkit.load(link)


def test_a_link_to_a_model_file_loads(fitted, model_file, tmp_path):
    link = tmp_path / "link.emkit"
    link.symlink_to(model_file)
    assert np.array_equal(emkit.load(link).means_, fitted.means_)


def test_wrong_format_name(model_file):
    rewrite(model_file, metadata_change=lambda m: m.update(format="something-else"))
    with pytest.raises(ModelFileError, match="not an emkit model file"):
        emkit.load(model_file)


def test_zip_without_metadata(tmp_path):
    path = tmp_path / "plain.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ModelFileError, match="no emkit.json"):
        emkit.load(path)


def test_newer_schema_version_says_which_version_is_read(model_file):
    rewrite(model_file, metadata_change=lambda m: m.update(schema_version=99))
    with pytest.raises(ModelFileError, match=f"version 99.*reads version {persist.SCHEMA_VERSION}"):
        emkit.load(model_file)
    with pytest.raises(ModelFileError, match="upgrade emkit"):
        persist.describe(model_file)


@pytest.mark.parametrize("version", [0, "1", 1.0, None, True])
def test_invalid_schema_version(model_file, version):
    rewrite(model_file, metadata_change=lambda m: m.update(schema_version=version))
    with pytest.raises(ModelFileError, match="schema_version"):
        emkit.load(model_file)


@pytest.mark.parametrize("name", ["os:system", "HiddenMarkovModel", "Pipeline", None, 3])
def test_unknown_estimator_class(model_file, name):
    rewrite(model_file, metadata_change=lambda m: m.update(estimator=name))
    with pytest.raises(ModelFileError, match="cannot load"):
        emkit.load(model_file)


def test_inconsistent_shapes(model_file):
    def swap(members):
        members["arrays/means_.npy"] = npy_bytes(np.zeros((3, 4)))

    def announce(metadata):
        metadata["arrays"]["means_"]["shape"] = [3, 4]

    rewrite(model_file, metadata_change=announce, members_change=swap)
    with pytest.raises(ModelFileError, match=r"means_ should have shape \(3, 3\)"):
        emkit.load(model_file)


def test_array_disagreeing_with_its_metadata(model_file):
    def swap(members):
        members["arrays/weights_.npy"] = npy_bytes(np.full(3, 1 / 3, dtype=np.float32))

    rewrite(model_file, members_change=swap)
    with pytest.raises(ModelFileError, match="announces"):
        emkit.load(model_file)


@pytest.mark.parametrize("weights, message", [
    ([0.5, 0.5, 0.5], "sum to 1"),
    ([1.5, -0.25, -0.25], "non-negative"),
    ([np.nan, 0.5, 0.5], "NaN"),
    ([np.inf, 0.5, 0.5], "NaN or infinite"),
])
def test_invalid_weights(model_file, weights, message):
    rewrite(model_file, members_change=lambda m: m.update(
        {"arrays/weights_.npy": npy_bytes(np.array(weights))}))
    with pytest.raises(ModelFileError, match=message):
        emkit.load(model_file)


def test_missing_member_and_missing_attribute(model_file):
    rewrite(model_file, members_change=lambda m: m.pop("arrays/means_.npy"))
    with pytest.raises(ModelFileError, match="lacks member 'arrays/means_.npy'"):
        emkit.load(model_file)
    rewrite(model_file, metadata_change=lambda m: m["arrays"].pop("means_"))
    with pytest.raises(ModelFileError, match="means_ is missing"):
        emkit.load(model_file)


@pytest.mark.parametrize("change, message", [
    (lambda m: m["params"].update(covariance_type="weird"), "covariance_type"),
    (lambda m: m["params"].update(n_components=4), r"should have shape \(4,"),
    (lambda m: m["params"].update(not_a_parameter=1), "no parameter 'not_a_parameter'"),
    (lambda m: m["params"].update(dtype={"numpy_dtype": "object"}), "non-numeric dtype"),
    (lambda m: m["params"].update(dtype={"import": "os.system"}), "unknown encoding"),
    (lambda m: m["params"].update(dtype=[1, 2]), "dtype"),
    (lambda m: m["attributes"].update(converged_="yes"), "converged_"),
    (lambda m: m["attributes"].update(n_iter_=True), "n_iter_"),
    (lambda m: m["attributes"].update(events_=[[1, {"x": 1}]]), "events_"),
    (lambda m: m["attributes"].update(secret_="x"), "unexpected attribute 'secret_'"),
    (lambda m: m["attributes"].update(feature_names_in_=["a", "b"]), "feature_names_in_"),
    (lambda m: m.update(params=[]), "'params' is missing"),
])
def test_invalid_metadata_values(model_file, change, message):
    rewrite(model_file, metadata_change=change)
    with pytest.raises(ModelFileError, match=message):
        emkit.load(model_file)


def test_non_finite_json_number_is_refused(model_file):
    with zipfile.ZipFile(model_file) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["emkit.json"] = members["emkit.json"].replace(
        b'"lower_bound_": ', b'"lower_bound_": NaN, "x": ')
    with zipfile.ZipFile(model_file, "w") as archive:
        for name, raw in members.items():
            archive.writestr(name, raw)
    with pytest.raises(ModelFileError, match="not valid JSON"):
        emkit.load(model_file)


def test_errors_are_one_line(model_file):
    model_file.write_bytes(b"\x00" * 10)
    with pytest.raises(ModelFileError) as caught:
        emkit.load(model_file)
    assert "\n" not in str(caught.value)


# --------------------------------------------------------------------------- atomic writes
def directory_listing(path):
    return sorted(p.name for p in path.iterdir())


def test_failure_mid_write_leaves_the_old_file_and_no_temporary(fitted, data, tmp_path,
                                                                  monkeypatch):
    path = tmp_path / "model.emkit"
    fitted.save(path)
    before = path.read_bytes()
    real_write_array = np.lib.format.write_array
    calls = []

    def write_then_fail(stream, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # fail after a few members are already written
            stream.write(b"partial")
            raise OSError(28, "No space left on device")
        return real_write_array(stream, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_fail)
    other = GaussianMixture(2, random_state=5).fit(data)
    with pytest.raises(ModelFileError, match="No space left on device"):
        other.save(path)
    assert path.read_bytes() == before
    assert directory_listing(tmp_path) == ["model.emkit"]

    monkeypatch.setattr(np.lib.format, "write_array", real_write_array)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        other.save(path)
    assert path.read_bytes() == before
    assert directory_listing(tmp_path) == ["model.emkit"]


def test_failed_rename_leaves_the_old_file_and_no_temporary(fitted, data, tmp_path,
                                                             monkeypatch):
    path = tmp_path / "model.emkit"
    fitted.save(path)
    before = path.read_bytes()

    def fail(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(ModelFileError, match="Permission denied"):
        GaussianMixture(2, random_state=5).fit(data).save(path)
    assert path.read_bytes() == before
    assert directory_listing(tmp_path) == ["model.emkit"]


def test_overwrite_replaces_and_keeps_permissions(fitted, data, tmp_path):
    path = tmp_path / "model.emkit"
    fitted.save(path)
    os.chmod(path, 0o640)
    other = GaussianMixture(2, random_state=5).fit(data)
    other.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert emkit.load(path).n_components == 2
    assert directory_listing(tmp_path) == ["model.emkit"]


def test_writing_into_a_missing_folder_or_onto_a_folder(fitted, tmp_path):
    with pytest.raises(ModelFileError, match="cannot write"):
        fitted.save(tmp_path / "no" / "such" / "folder" / "model.emkit")
    with pytest.raises(ModelFileError, match="directory"):
        fitted.save(tmp_path)


def test_registry_only_imports_registered_targets(model_file, monkeypatch):
    """The class comes from emkit's registry: a file cannot name a module to import."""
    imported = []
    real_import = persist.importlib.import_module
    monkeypatch.setattr(persist.importlib, "import_module",
                        lambda name: imported.append(name) or real_import(name))
    emkit.load(model_file)
    # emkit's own modules only: the registering ones (a fixed list in emkit's code), what they
    # import lazily, and the registered target.
    registered = {"emkit.estimators.gaussian_mixture"}
    assert set(persist._REGISTERING_MODULES) | registered <= set(imported)
    assert all(name.startswith("emkit.") for name in imported)


def test_a_killed_save_leaves_a_temporary_file_that_the_next_save_removes(fitted, tmp_path):
    path = tmp_path / "model.emkit"
    # A writer killed before its rename: its temporary file stays behind.
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from emkit.core.atomic import write_atomically\n"
        "def slow(stream):\n"
        "    stream.write(b'x' * 1000); stream.flush(); print('writing', flush=True)\n"
        "    time.sleep(60)\n"
        f"write_atomically({str(path)!r}, slow)\n")], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    (stale,) = tmp_path.glob(".model.emkit.emkit-*.tmp")
    assert f"emkit-{writer.pid}-" in stale.name
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    # A temporary file of a live writer is never touched, however old.
    live = tmp_path / f".model.emkit.emkit-{os.getpid()}-abc.tmp"
    live.write_bytes(b"in progress")
    other = tmp_path / ".other.emkit.emkit-999999999-abc.tmp"  # another target's
    other.write_bytes(b"")
    old = time.time() - 3600
    for file in (stale, live, other):
        os.utime(file, (old, old))
    fitted.save(path)
    assert not stale.exists()
    assert live.exists() and other.exists()
    assert emkit.load(path).n_components == fitted.n_components


def test_a_fresh_temporary_file_of_a_dead_writer_is_kept_for_a_minute(fitted, tmp_path):
    path = tmp_path / "model.emkit"
    recent = tmp_path / ".model.emkit.emkit-999999999-abc.tmp"  # no such process
    recent.write_bytes(b"")
    fitted.save(path)
    assert recent.exists()  # perhaps a writer on another machine sharing the folder


def _forged(source, target, metadata_change=None, members_change=None):
    """A copy of ``source`` at ``target`` with changed metadata and members."""
    target.write_bytes(source.read_bytes())
    rewrite(target, metadata_change, members_change)
    return target


@pytest.fixture(scope="module")
def fitted_models(tmp_path_factory):
    """One fitted model file of each kind whose metadata records a fit."""
    from emkit.estimators.compound_dirichlet import DirichletMultinomialMixture
    from emkit.estimators.fixed_mixture import FixedMixture
    from emkit.estimators.hmm import CategoricalHMM, GaussianHMM

    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("models")
    models = {
        "gmm": GaussianMixture(2, random_state=0).fit(rng.normal(size=(60, 2))),
        "gaussian-hmm": GaussianHMM(2, random_state=0).fit(rng.normal(size=(80, 2))),
        "categorical-hmm": CategoricalHMM(2, random_state=0).fit(rng.integers(0, 3, (80, 1))),
        "dmm": DirichletMultinomialMixture(2, random_state=0).fit(rng.integers(0, 9, (40, 4))),
        "fixed": FixedMixture().fit(rng.uniform(0.1, 1.0, size=(50, 3))),
        "poisson": emkit.PoissonMixture(2, random_state=0).fit(rng.poisson(3.0, (50, 2))),
        "categorical": emkit.CategoricalMixture(2, random_state=0).fit(
            rng.integers(0, 3, (60, 2))),
    }
    paths = {}
    for name, model in models.items():
        paths[name] = folder / f"{name}.emkit"
        model.save(paths[name])
    return paths


@pytest.mark.parametrize("kind", ["gmm", "gaussian-hmm", "categorical-hmm", "dmm", "fixed",
                                  "poisson", "categorical"])
@pytest.mark.parametrize(("attribute", "value", "message"), [
    ("n_iter_", -3, "n_iter_ must be an integer >= 0"),
    ("n_iter_", 2.5, "n_iter_"),
    ("lower_bound_", "high", "lower_bound_"),
])
def test_forged_fit_record_is_refused_for_every_estimator(fitted_models, tmp_path, kind,
                                                          attribute, value, message):
    forged = _forged(fitted_models[kind], tmp_path / "forged.emkit",
                     lambda metadata: metadata["attributes"].update({attribute: value}))
    with pytest.raises(ModelFileError, match=message):
        emkit.load(forged)


def test_a_one_dimensional_emission_matrix_is_refused(fitted_models, tmp_path):
    def flatten(members):
        members["arrays/emissionprob_.npy"] = npy_bytes(np.array([0.5, 0.5]))

    def announce(metadata):
        metadata["arrays"]["emissionprob_"].update(shape=[2])

    forged = _forged(fitted_models["categorical-hmm"], tmp_path / "forged.emkit", announce,
                     flatten)
    with pytest.raises(ModelFileError, match=r"emissionprob_ should have shape \(2, n\)"):
        emkit.load(forged)


def test_covariances_that_do_not_match_their_cholesky_factors_are_refused(fitted_models,
                                                                          tmp_path):
    model = emkit.load(fitted_models["gmm"])

    def scale(members):
        members["arrays/covariances_.npy"] = npy_bytes(model.covariances_ * 1.01)

    forged = _forged(fitted_models["gmm"], tmp_path / "forged.emkit", members_change=scale)
    with pytest.raises(ModelFileError, match="do not belong together"):
        emkit.load(forged)


# --------------------------------------------------------------------------- what loading allocates
def npy_header_only(shape, dtype="<f8", data=b"\0" * 16):
    """A .npy header announcing ``shape`` followed by only a few bytes of data."""
    stream = io.BytesIO()
    npformat = np.lib.format
    npformat.write_array_header_1_0(stream, {"descr": dtype, "fortran_order": False,
                                             "shape": tuple(shape)})
    return stream.getvalue() + data


def _load_tracing_memory(path):
    """Load ``path`` expecting a ModelFileError; return (error, peak bytes numpy and Python
    allocated meanwhile)."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError) as error:
            emkit.load(path)
        return error.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("rows, message", [
    (10**9, r"announces \[1000000000, 3\] elements, more than a model file may hold"),
    (5 * 10**7, r"means_ should have shape \(3, 3\) .* announces \(50000000, 3\)"),
])
def test_a_billion_row_array_in_a_tiny_member_is_refused_without_allocating(model_file, rows,
                                                                            message):
    """The metadata and the .npy header agree on many rows of means_; the member holds 16
    bytes. Refused before reading: 10⁹ rows (24 GB) by the size limit, 5·10⁷ rows (1.2 GB,
    within it) by the shape the estimator's metadata give (3 × 3)."""
    def announce(metadata):
        metadata["arrays"]["means_"]["shape"] = [rows, 3]

    rewrite(model_file, announce, lambda members: members.update(
        {"arrays/means_.npy": npy_header_only((rows, 3))}))
    error, peak = _load_tracing_memory(model_file)
    assert re.search(message, str(error))
    assert peak < 1 << 20


def test_a_long_history_in_a_tiny_member_is_refused_without_allocating(model_file):
    """history_ has no length the metadata fix: 2·10⁸ values (1.6 GB, within the size limit)
    announced by metadata and header, 16 bytes stored — refused from the member's size."""
    def announce(metadata):
        metadata["arrays"]["history_"]["shape"] = [2 * 10**8]

    rewrite(model_file, announce, lambda members: members.update(
        {"arrays/history_.npy": npy_header_only((2 * 10**8,))}))
    error, peak = _load_tracing_memory(model_file)
    assert "too few for the announced <f8 array of shape (200000000,)" in str(error)
    assert peak < 1 << 20


def test_a_member_announcing_more_bytes_than_the_file_holds_is_refused(model_file):
    """As above, and the central directory also claims the 1.6 GB the header needs (both sizes,
    as for a stored member): the file is a few kB, so the claim is refused before reading."""
    rewrite(model_file, lambda m: m["arrays"]["history_"].update(shape=[2 * 10**8]),
            lambda members: members.update(
                {"arrays/history_.npy": npy_header_only((2 * 10**8,))}))
    raw = bytearray(model_file.read_bytes())
    entry = raw.rindex(b"arrays/history_.npy") - 46
    assert raw[entry:entry + 4] == b"PK\x01\x02"
    header_bytes = len(npy_header_only((2 * 10**8,), data=b""))
    struct.pack_into("<H", raw, entry + 10, 0)  # stored
    struct.pack_into("<II", raw, entry + 20, 1600 * 10**6 + header_bytes,
                     1600 * 10**6 + header_bytes)
    model_file.write_bytes(bytes(raw))
    error, peak = _load_tracing_memory(model_file)
    assert "more than the file holds" in str(error)
    assert peak < 1 << 20


@pytest.mark.parametrize("kind", ["gmm", "gaussian-hmm", "categorical-hmm", "dmm", "fixed",
                                  "poisson", "categorical"])
def test_an_array_of_another_shape_than_the_metadata_describe_is_refused(fitted_models,
                                                                        tmp_path, kind):
    """One array grown by a row, consistently in its metadata entry and its .npy header (only
    the estimator's own shapes can tell), for every kind of estimator."""
    model = emkit.load(fitted_models[kind])
    name = {"gmm": "means_", "gaussian-hmm": "transmat_", "categorical-hmm": "emissionprob_",
            "dmm": "alpha_", "fixed": "weights_", "poisson": "rates_",
            "categorical": "probabilities_"}[kind]
    grown = np.concatenate([getattr(model, name), getattr(model, name)[:1]])

    forged = _forged(fitted_models[kind], tmp_path / "forged.emkit",
                     lambda m: m["arrays"][name].update(shape=list(grown.shape)),
                     lambda members: members.update({f"arrays/{name}.npy": npy_bytes(grown)}))
    with pytest.raises(ModelFileError, match=f"{name} should have shape"):
        emkit.load(forged)


def test_metadata_that_fix_no_shape_are_refused(fitted_models, tmp_path):
    forged = _forged(fitted_models["gaussian-hmm"], tmp_path / "forged.emkit",
                     lambda m: m["attributes"].update(n_features_in_=-2))
    with pytest.raises(ModelFileError, match="n_features_in_ must be a positive integer"):
        emkit.load(forged)


def test_a_fitted_array_of_integers_is_refused(model_file):
    rewrite(model_file, lambda m: m["arrays"]["weights_"].update(dtype="<i8"),
            lambda members: members.update({"arrays/weights_.npy": npy_bytes(np.ones(3, int))}))
    with pytest.raises(ModelFileError, match="weights_ has dtype <i8; it must hold floating"):
        emkit.load(model_file)


def test_an_archive_of_many_members_is_refused_before_its_directory_is_parsed(tmp_path,
                                                                              monkeypatch):
    path = tmp_path / "many.emkit"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(persist.MAX_MEMBERS + 1):
            archive.writestr(f"m{i}", b"")
    monkeypatch.setattr(zipfile, "ZipFile", lambda *a, **k: pytest.fail("parsed the directory"))
    with pytest.raises(ModelFileError, match=f"announces {persist.MAX_MEMBERS + 1} members"):
        emkit.load(path)


# --------------------------------------------------------------------------- which array is which
def test_swapped_members_of_the_same_shape_are_refused(fitted_models, tmp_path):
    """Two members exchanged, each intact (the zip CRCs hold) and of the shape its name needs
    (a PoissonHMM's 2 × 2 rates and transition matrix, valid either way): the CRC-32 of the
    values in the metadata tells them apart."""
    from emkit.estimators.hmm import PoissonHMM

    path = tmp_path / "poisson.emkit"
    PoissonHMM(2, random_state=0).fit(np.random.default_rng(0).poisson(3, (200, 2))).save(path)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["arrays/lambdas_.npy"], members["arrays/transmat_.npy"] = \
        members["arrays/transmat_.npy"], members["arrays/lambdas_.npy"]
    with zipfile.ZipFile(path, "w") as archive:
        for name, raw in members.items():
            archive.writestr(name, raw)
    with pytest.raises(ModelFileError, match="lambdas_.npy does not hold the values the "
                                             "metadata describe"):
        emkit.load(path)


def test_the_fit_record_cannot_be_swapped(model_file):
    with zipfile.ZipFile(model_file) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["arrays/history_.npy"], members["arrays/lower_bounds_.npy"] = \
        members["arrays/lower_bounds_.npy"], members["arrays/history_.npy"]
    with zipfile.ZipFile(model_file, "w") as archive:
        for name, raw in members.items():
            archive.writestr(name, raw)
    with pytest.raises(ModelFileError, match="CRC-32 differs"):
        emkit.load(model_file)


def test_a_version_1_file_without_crcs_still_loads(fitted, data, model_file):
    def version_1(metadata):
        metadata["schema_version"] = 1
        for info in (*metadata["arrays"].values(), *metadata["param_arrays"].values()):
            del info["crc32"]

    rewrite(model_file, metadata_change=version_1)
    assert_same_model(fitted, emkit.load(model_file), data)
    rewrite(model_file, metadata_change=lambda m: m.update(schema_version=2))
    with pytest.raises(ModelFileError, match="invalid description of array"):
        emkit.load(model_file)


def test_a_categorical_hmm_reads_one_column(fitted_models, tmp_path):
    forged = _forged(fitted_models["categorical-hmm"], tmp_path / "forged.emkit",
                     lambda m: m["attributes"].update(n_features_in_=10**9))
    with pytest.raises(ModelFileError, match="n_features_in_ of a CategoricalHMM must be 1"):
        emkit.load(forged)


def test_family_mixture_files_refuse_forged_shapes_and_levels(fitted_models, tmp_path):
    """The shapes of a FamilyMixture's arrays are checked before reading (from n_components
    and n_features_in_), and a categorical model's levels must match its probabilities."""
    def announce(metadata):
        metadata["arrays"]["rates_"].update(shape=[3, 2])

    forged = _forged(fitted_models["poisson"], tmp_path / "forged.emkit", announce)
    with pytest.raises(ModelFileError, match=r"rates_ should have shape \(2, 2\)"):
        emkit.load(forged)
    forged = _forged(fitted_models["categorical"], tmp_path / "levels.emkit",
                     lambda metadata: metadata["attributes"].update(n_levels_=[3, 5]))
    with pytest.raises(ModelFileError, match="n_levels_"):
        emkit.load(forged)
    forged = _forged(fitted_models["categorical"], tmp_path / "text.emkit",
                     lambda metadata: metadata["attributes"].update(n_levels_="3"))
    with pytest.raises(ModelFileError, match="n_levels_"):
        emkit.load(forged)
