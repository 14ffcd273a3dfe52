"""Fault injection for model files: corrupted files of every estimator, each loaded in a fresh
subprocess that measures its time and peak resident memory.

Goal (issue 14): every corrupt file gives ModelFileError — never another exception, a hang or a
crash — within a second, and loading it costs at most about twice the legitimate model's size in
memory above the interpreter's baseline.

Real models of every registered estimator are fitted and saved (one larger Gaussian mixture, so
that the memory ratio is measured on megabytes, not on the allocator's noise), then damaged:
single bit flips at random offsets, truncations, arrays announcing inflated shapes (metadata and
.npy header consistently, the member small), other dtypes, huge sizes in the zip directory,
swapped or duplicated members, edited metadata, a zip bomb, an archive of many members, and
things that are not regular files (a FIFO, links to /dev/zero and /dev/urandom, a directory).

Each file is loaded in a child forked from a process that has already imported emkit and its
estimators, so the child's peak RSS above its RSS at the fork is what loading cost; the parent
kills a child after 10 s. A bit flip that leaves the model intact (a zip timestamp) may load: it is
counted apart, and checked to give the original's arrays.

    python benchmarks/model_file_faults.py [--flips 12] [--seed 0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import select
import shutil
import signal
import struct
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

TIMEOUT = 10.0


# --------------------------------------------------------------------------- real models
def fitted_models():
    """name -> fitted estimator, one or more of every registered estimator."""
    from emkit import GaussianMixture
    from emkit.estimators.compound_dirichlet import (
        Dirichlet,
        DirichletMultinomial,
        DirichletMultinomialMixture,
    )
    from emkit.estimators.fixed_mixture import FixedMixture
    from emkit.estimators.hmm import GMMHMM, CategoricalHMM, GaussianHMM, PoissonHMM
    from emkit.estimators.superimposed import SuperimposedSignals

    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (150, 4)), rng.normal(4, 1, (150, 4))])
    big = rng.normal(size=(2000, 100))
    t = np.arange(128)
    y = np.cos(0.3 * t) + 0.5 * np.cos(1.1 * t + 0.4) + 0.1 * rng.normal(size=128)
    models = {f"GaussianMixture-{kind}": GaussianMixture(3, covariance_type=kind, n_init=2,
                                                         random_state=0).fit(X)
              for kind in ("full", "tied", "diag", "spherical")}
    # 16 components × 100 features, full: 3.8 MB of arrays.
    models["GaussianMixture-large"] = GaussianMixture(16, max_iter=3, init_params="random",
                                                      random_state=0).fit(big)
    models.update({
        "GaussianHMM-full": GaussianHMM(3, random_state=0).fit(X),
        "GaussianHMM-diag": GaussianHMM(3, covariance_type="diag", random_state=0).fit(X),
        "GMMHMM": GMMHMM(2, 2, covariance_type="diag", random_state=0).fit(X),
        "CategoricalHMM": CategoricalHMM(2, random_state=0).fit(rng.integers(0, 4, (200, 1))),
        "PoissonHMM": PoissonHMM(2, random_state=0).fit(rng.poisson(3, (200, 2))),
        "FixedMixture": FixedMixture().fit(rng.uniform(0.1, 1, (80, 3))),
        "SuperimposedSignals": SuperimposedSignals("tones", 2, random_state=0).fit(y),
        "DirichletMultinomialMixture": DirichletMultinomialMixture(2, random_state=0).fit(
            rng.integers(0, 9, (60, 5))),
        "DirichletMultinomial": DirichletMultinomial().fit(rng.integers(0, 9, (60, 5))),
        "Dirichlet": Dirichlet().fit(rng.dirichlet([1, 2, 3], 60)),
    })
    return models


# --------------------------------------------------------------------------- corruptions
def read_members(raw: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_members(members: dict[str, bytes], deflate_arrays=False) -> bytes:
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        for name, data in members.items():
            compress = zipfile.ZIP_DEFLATED if name == "emkit.json" or deflate_arrays \
                else zipfile.ZIP_STORED
            archive.writestr(name, data, compress_type=compress)
    return stream.getvalue()


def npy_header(shape, dtype="<f8") -> bytes:
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, {"descr": dtype, "fortran_order": False,
                                                  "shape": tuple(shape)})
    return stream.getvalue()


def forged(raw: bytes, metadata_change=None, members_change=None, deflate=False) -> bytes:
    members = read_members(raw)
    metadata = json.loads(members["emkit.json"])
    if metadata_change:
        metadata_change(metadata)
    members["emkit.json"] = json.dumps(metadata).encode()
    if members_change:
        members_change(members)
    return write_members(members, deflate)


def swap(a: str, b: str):
    """A change of the members that swaps the contents of members ``a`` and ``b``."""
    return lambda members: members.update({a: members[b], b: members[a]})


def patch_directory(raw: bytes, member: str, offset: int, fmt: str, *values) -> bytes:
    """Overwrite a field of ``member``'s central-directory entry."""
    raw = bytearray(raw)
    entry = raw.rindex(member.encode()) - 46
    assert raw[entry:entry + 4] == b"PK\x01\x02"
    struct.pack_into(fmt, raw, entry + offset, *values)
    return bytes(raw)


def corruptions(raw: bytes, flips: int, rng: np.random.Generator):
    """(family, label, bytes) of damaged versions of one saved model."""
    members = read_members(raw)
    metadata = json.loads(members["emkit.json"])
    # The two largest parameter arrays (not the fit record: history_, lower_bounds_, ...).
    record = {"history_", "lower_bounds_", "restart_objectives_"}
    arrays = sorted(set(metadata["arrays"]) - record,
                    key=lambda name: (-np.prod(metadata["arrays"][name]["shape"]), name))
    first, second = arrays[0], arrays[1 % len(arrays)]
    member = f"arrays/{first}.npy"
    shape = metadata["arrays"][first]["shape"]
    for _ in range(flips):
        position, bit = int(rng.integers(len(raw))), int(rng.integers(8))
        damaged = bytearray(raw)
        damaged[position] ^= 1 << bit
        yield "bit flip", f"byte {position} bit {bit}", bytes(damaged)
    for keep in (0, 21, len(raw) // 2, len(raw) * 9 // 10, len(raw) - 1):
        yield "truncation", f"first {keep} bytes", raw[:keep]
    for rows in (10**3, 10**6, 5 * 10**7, 10**9, 10**12):
        big = [rows] + shape[1:]

        def announce(m, big=big):
            m["arrays"][first]["shape"] = big

        def header(ms, big=big):
            ms[member] = npy_header(big) + b"\0" * 64

        yield "inflated shape", f"{first} {big}, metadata and header", \
            forged(raw, announce, header)
        yield "inflated shape", f"{first} {big}, header only", forged(raw, None, header)
        # history_ has no length the metadata fix: only the member's size can refuse it
        yield "inflated shape", f"history_ [{rows}], metadata and header", forged(
            raw, lambda m, rows=rows: m["arrays"]["history_"].update(shape=[rows]),
            lambda ms, rows=rows: ms.update({"arrays/history_.npy": npy_header([rows])}))
    for dtype in ("<f4", "<c16", "|O", "<i8", "<U100000", "V1000000"):
        yield "other dtype", f"{first} as {dtype}", forged(
            raw, lambda m, d=dtype: m["arrays"][first].update(dtype=d),
            lambda ms, d=dtype: ms.update({member: npy_header(shape, d) + ms[member][128:]}))
    for size in (2**31, 2**32 - 2):
        yield "huge declared size", f"{member} file_size {size}", \
            patch_directory(raw, member, 24, "<I", size)
        yield "huge declared size", f"{member} both sizes {size}", \
            patch_directory(raw, member, 20, "<II", size, size)
    yield "huge declared size", "emkit.json file_size 2**32-2", \
        patch_directory(raw, "emkit.json", 24, "<I", 2**32 - 2)
    if second != first:
        yield "swapped members", f"{first} <-> {second}", forged(raw, None, swap(
            member, f"arrays/{second}.npy"))
        yield "swapped members", f"{first} := {second}", forged(raw, None, lambda ms: ms.update(
            {member: ms[f"arrays/{second}.npy"]}))
    if "lower_bounds_" in metadata["arrays"]:
        yield "swapped members", "history_ <-> lower_bounds_", forged(raw, None, swap(
            "arrays/history_.npy", "arrays/lower_bounds_.npy"))
    yield "swapped members", "metadata as an array", forged(raw, None, lambda ms: ms.update(
        {member: ms["emkit.json"]}))
    for label, change in (
            ("n_components 10**6", lambda m: m["params"].update(n_components=10**6)),
            ("n_features_in_ 10**9", lambda m: m["attributes"].update(n_features_in_=10**9)),
            ("n_features_in_ -1", lambda m: m["attributes"].update(n_features_in_=-1)),
            ("n_iter_ 1e300", lambda m: m["attributes"].update(n_iter_=1e300)),
            ("estimator swapped", lambda m: m.update(
                estimator="GaussianHMM" if m["estimator"] != "GaussianHMM"
                else "GaussianMixture")),
            ("arrays emptied", lambda m: m.update(arrays={}))):
        yield "edited metadata", label, forged(raw, change)
    yield "edited metadata", "JSON nested 100,000 deep", forged(raw, None, lambda ms: ms.update(
        {"emkit.json": ms["emkit.json"].replace(
            b'"params": {', b'"params": {"x": ' + b"[" * 10**5 + b"]" * 10**5 + b", ", 1)}))
    zeros = np.zeros(4096 * 8192)  # 256 MiB that deflate to 256 KiB
    body = io.BytesIO()
    np.save(body, zeros)
    yield "zip bomb", "history_ of 256 MiB zeros, deflated", forged(
        raw, lambda m: m["arrays"]["history_"].update(shape=[len(zeros)]),
        lambda ms: ms.update({"arrays/history_.npy": body.getvalue()}), deflate=True)
    yield "many members", "10,000 empty members", write_members(
        {**members, **{f"x{i}": b"" for i in range(10_000)}})


def special_files(folder: Path):
    """(family, label, path) of things that are not regular files."""
    fifo = folder / "fifo.emkit"
    os.mkfifo(fifo)
    yield "not a regular file", "FIFO", fifo
    for device in ("/dev/zero", "/dev/urandom"):
        link = folder / f"link-{Path(device).name}.emkit"
        link.symlink_to(device)
        yield "not a regular file", f"link to {device}", link
    directory = folder / "directory.emkit"
    directory.mkdir()
    yield "not a regular file", "directory", directory
    dangling = folder / "dangling.emkit"
    dangling.symlink_to(folder / "nowhere")
    yield "not a regular file", "dangling link", dangling


# --------------------------------------------------------------------------- measuring
def load_in_child(path: Path, original: dict | None) -> dict:
    """Load ``path`` in a forked child: outcome, seconds, peak RSS increase (bytes)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        result = {}
        try:
            import emkit
            from emkit.errors import ModelFileError

            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            start = time.perf_counter()
            try:
                model = emkit.load(path)
                result["outcome"] = "loaded"
                if original is not None:
                    same = all(np.array_equal(getattr(model, name), value)
                               for name, value in original.items())
                    result["outcome"] = "loaded, same model" if same else "loaded, other model"
            except ModelFileError as error:
                result["outcome"] = "ModelFileError"
                result["message"] = str(error)[:200]
            except BaseException as error:  # noqa: BLE001 - what the goal forbids
                result["outcome"] = f"{type(error).__name__}"
                result["message"] = str(error)[:200]
            result["seconds"] = time.perf_counter() - start
            result["rss"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
        finally:
            os.write(write_end, json.dumps(result).encode())
            os._exit(0)
    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], TIMEOUT)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read_end)
        return {"outcome": "timeout", "seconds": TIMEOUT, "rss": 0}
    data = b""
    while chunk := os.read(read_end, 65536):
        data += chunk
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if not data:
        return {"outcome": f"crash (status {status})", "seconds": float("nan"), "rss": 0}
    return json.loads(data)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=12, help="bit flips per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="write the corrupt files into this folder")
    args = parser.parse_args(argv)

    import emkit
    from emkit.estimators import persist

    folder = Path(args.keep or tempfile.mkdtemp(prefix="emkit-faults-"))
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    rows, legit = [], {}
    models = fitted_models()  # imports every estimator module before the first fork
    for name, model in models.items():
        path = folder / f"{name}.emkit"
        model.save(path)
        raw = path.read_bytes()
        metadata = persist.describe(path)
        model_bytes = sum(int(np.prod(info["shape"])) * np.dtype(info["dtype"]).itemsize
                          for info in metadata["arrays"].values())
        original = {key: getattr(model, key) for key in metadata["arrays"]}
        clean = load_in_child(path, original)
        assert clean["outcome"] == "loaded, same model", clean
        legit[name] = {"file": len(raw), "arrays": model_bytes, "rss": clean["rss"],
                       "seconds": clean["seconds"]}
        for index, (family, label, data) in enumerate(corruptions(raw, args.flips, rng)):
            corrupt = folder / f"{name}-{index:03d}.emkit"
            corrupt.write_bytes(data)
            result = load_in_child(corrupt, original)
            rows.append({"model": name, "family": family, "label": label, **result,
                         "file": len(data), "arrays": model_bytes})
            if not args.keep:
                corrupt.unlink()
    for family, label, path in special_files(folder):
        rows.append({"model": "-", "family": family, "label": label,
                     **load_in_child(path, None), "file": 0, "arrays": 0})
    if not args.keep:
        shutil.rmtree(folder)
    report(rows, legit, emkit.__version__)


def report(rows, legit, version):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from gmm import machine_description

    bad = [row for row in rows if row["outcome"] not in ("ModelFileError", "loaded, same model")]
    refused = [row for row in rows if row["outcome"] == "ModelFileError"]
    intact = [row for row in rows if row["outcome"] == "loaded, same model"]
    families = {}
    for row in rows:
        entry = families.setdefault(row["family"], {"n": 0, "refused": 0, "intact": 0,
                                                    "seconds": 0.0, "rss": 0})
        entry["n"] += 1
        entry["refused"] += row["outcome"] == "ModelFileError"
        entry["intact"] += row["outcome"] == "loaded, same model"
        entry["seconds"] = max(entry["seconds"], row["seconds"])
        entry["rss"] = max(entry["rss"], row["rss"])
    lines = machine_description() + [
        "",
        f"{len(rows)} corrupt files of {len(legit)} saved models: **{len(refused)} "
        f"ModelFileError, {len(intact)} loaded the intact model (a flipped bit in a zip field "
        f"that holds no model data), {len(bad)} other outcomes**.",
        "",
        "| damage | files | ModelFileError | loaded intact | other | max s | max peak RSS "
        "increase |",
        "|---|---|---|---|---|---|---|",
    ]
    for family, entry in families.items():
        lines.append(f"| {family} | {entry['n']} | {entry['refused']} | {entry['intact']} | "
                     f"{entry['n'] - entry['refused'] - entry['intact']} | "
                     f"{entry['seconds']:.3f} | {entry['rss'] / 2**20:.1f} MiB |")
    lines += ["", "Memory against the legitimate model (peak RSS increase of loading, above the "
              "forked interpreter's baseline):", "",
              "| model | file | arrays | clean load: s, RSS | corrupt: max RSS | max / arrays |",
              "|---|---|---|---|---|---|"]
    for name, entry in legit.items():
        worst_row = max((row for row in rows if row["model"] == name),
                        key=lambda row: row["rss"])
        worst = worst_row["rss"]
        lines.append(f"| {name} | {entry['file'] / 1024:.1f} KiB | "
                     f"{entry['arrays'] / 1024:.1f} KiB | {entry['seconds']:.3f}, "
                     f"{entry['rss'] / 2**20:.2f} MiB | {worst / 2**20:.2f} MiB | "
                     f"{worst / entry['arrays']:.2f} ({worst_row['family']}) |")
    for row in intact:
        if row["family"] != "bit flip":
            lines.append(f"- loaded intact: {row['model']} {row['family']} {row['label']}")
    for row in bad:
        lines.append(f"- OTHER: {row['model']} {row['family']} {row['label']}: "
                     f"{row['outcome']} {row.get('message', '')}")
    slowest = max(rows, key=lambda row: row["seconds"])
    lines += [f"- slowest: {slowest['model']} {slowest['family']} ({slowest['label']}), "
              f"{slowest['seconds']:.3f} s",
              f"- emkit {version}; command: python benchmarks/model_file_faults.py"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
