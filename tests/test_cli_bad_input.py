"""The bad-input catalogue of the ``emkit`` command line (issue 18).

Every case is a mistake a user makes with a real file or option: each must end with exit status
2, exactly one line on stderr starting ``emkit: error: `` (no traceback), nothing on stdout, a
message naming the file concerned, and no file written, changed or removed (an output file that
exists before the call, given with ``-o``, stays byte for byte). A few older cases live in
test_cli.py (BAD_INPUT); this catalogue does not repeat them.
"""

import wave
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from emkit import datasets
from emkit.cli import main

FAITHFUL = datasets.path("faithful")
PENGUINS = datasets.path("penguins")
TWINS = datasets.path("twins")
TWO_TONES = datasets.recording_path("two_tones")
PRECIOUS = b"an existing output file: never touched by a failed command\n"


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A model file of every kind, fitted once (quickly: few iterations are enough here)."""
    folder = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(0)
    counts = folder / "counts.csv"
    counts.write_text("a,b,c\n" + "".join(f"{x},{y},{z}\n" for x, y, z in
                                          rng.integers(0, 20, size=(30, 3))))
    likelihoods = folder / "likelihoods.csv"
    likelihoods.write_text("m1,m2\n" + "".join(f"{x!r},{y!r}\n" for x, y in
                                               rng.uniform(0.1, 1, size=(20, 2)).tolist()))
    paths = SimpleNamespace(**{kind: folder / f"{kind}.emkit" for kind in
                               ("gmm", "hmm", "dmm", "fixed", "tones")})
    for argv in (["fit", "gmm", FAITHFUL, "-k", 2, "--max-iter", 20, "-o", paths.gmm],
                 ["fit", "hmm", FAITHFUL, "-k", 2, "--max-iter", 5, "-o", paths.hmm],
                 ["fit", "dmm", counts, "-k", 2, "--max-iter", 20, "-o", paths.dmm],
                 ["fit", "fixed", likelihoods, "-o", paths.fixed],
                 ["fit", "tones", TWO_TONES, "-k", 1, "--max-iter", 5, "-o", paths.tones]):
        assert main([str(arg) for arg in argv]) == 0, argv
    paths.folder = folder
    return paths


class Files:
    """What a case's argv is built from: the model files, a scratch folder and an existing
    output file ``out`` (``kept.*`` with the suffix the command writes)."""

    def __init__(self, folder: Path, models: SimpleNamespace):
        self.folder, self.models = folder, models
        self.out = self.existing("kept.emkit")
        self.csv_out = self.existing("kept.csv")

    def existing(self, name: str) -> Path:
        path = self.folder / name
        path.write_bytes(PRECIOUS)
        return path

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.folder / name
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        return path

    def wav(self, name: str, channels: int = 1, frames: int = 800) -> Path:
        path = self.folder / name
        with wave.open(str(path), "wb") as out:
            out.setnchannels(channels)
            out.setsampwidth(2)
            out.setframerate(8000)
            tone = (3000 * np.sin(np.arange(frames) * 0.3)).astype("<i2")
            out.writeframes(np.repeat(tone, channels).tobytes())
        return path

    def half_of(self, path: Path, name: str) -> Path:
        data = path.read_bytes()
        return self.file(name, data[: len(data) // 2])


def junk(n: int = 300) -> bytes:
    """Bytes that no text reader accepts: NULs and invalid UTF-8."""
    return bytes(np.random.default_rng(1).integers(0, 256, size=n, dtype=np.uint8)) + b"\x00\xff"


INTERLEAVED = "id,x\n" + "".join(f"{i},{v}\n" for i, v in
                                 zip("aaabbbaaa", [0.1, 0.5, 0.3, 2.1, 2.4, 2.2, 0.2, 0.4, 0.1],
                                     strict=True))
GAPPED_IDS = "id,x\n" + "a,0.1\na,0.3\n,0.5\nb,2.0\nb,2.2\n"
SMALL = "a,b\n1.0,2.0\n1.5,2.5\n2.0,1.0\n0.5,3.0\n"
COUNTS4 = "a,b\n1,2\n3,4\n5,6\n7,8\n"
THREE_COLUMNS = "x,y,z\n1,2,3\n2,3,1\n3,1,2\n1,1,1\n"


def bad_output_folder(f):
    return f.folder / "no such folder" / "out.emkit"


# case -> (argv builder, substrings the one-line message must contain). A file's name in the
# substrings checks that the message names the file concerned; {folder} is the case's folder.
CASES = {
    # ---------------------------------------------------------------- fit gmm
    "fit gmm: data is a folder": (
        lambda f: ["fit", "gmm", f.folder, "-k", 2, "-o", f.out], ("{folder}",)),
    "fit gmm: binary junk": (
        lambda f: ["fit", "gmm", f.file("junk.csv", junk()), "-k", 2, "-o", f.out],
        ("junk.csv", "binary")),
    "fit gmm: a model file as data": (
        lambda f: ["fit", "gmm", f.models.gmm, "-k", 2, "-o", f.out],
        ("gmm.emkit", "zip archive")),
    "fit gmm: all-NA column": (
        lambda f: ["fit", "gmm", f.file("allna.csv", "a,b\n1,NA\n2,NA\n3,NA\n4,NA\n"), "-k", 1,
                   "-o", f.out], ("allna.csv", "'b'", "no value")),
    "fit gmm: no numeric column": (
        lambda f: ["fit", "gmm", f.file("words.csv", "a,b\nx,y\nz,w\n"), "-k", 1, "-o", f.out],
        ("words.csv",)),
    "fit gmm: infinity in a cell": (
        lambda f: ["fit", "gmm", f.file("inf.csv", "a,b\n1,2\n2,inf\n3,1\n"), "-k", 1,
                   "-o", f.out], ("inf.csv",)),
    "fit gmm: duplicate column names": (
        lambda f: ["fit", "gmm", f.file("dup.csv", "a,a\n1,2\n2,3\n3,1\n"), "-k", 1, "-o", f.out],
        ("dup.csv", "duplicate")),
    "fit gmm: --columns with an empty name": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", 2, "--columns", "eruptions,,waiting",
                   "-o", f.out], ("empty name",)),
    "fit gmm: --columns names a column twice": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", 2, "--columns", "waiting,waiting", "-o", f.out],
        ("twice",)),
    "fit gmm: unknown --columns in a header-less file": (
        lambda f: ["fit", "gmm", f.file("nohead.csv", "1,2\n3,4\n5,7\n"), "-k", 1, "--columns",
                   "x", "-o", f.out], ("nohead.csv", "'x'")),
    "fit gmm: negative tol": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", 2, "--tol", "-0.001", "-o", f.out],
        ("--tol", "non-negative")),
    "fit gmm: tol not a number": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", 2, "--tol", "small", "-o", f.out], ("--tol",)),
    "fit gmm: bad covariance type": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", 2, "--covariance", "round", "-o", f.out],
        ("covariance type 'round'", "full")),
    "fit gmm: unknown init": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", 2, "--init", "magic", "-o", f.out],
        ("initialisation 'magic'",)),
    "fit gmm: max-iter 0": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", 2, "--max-iter", 0, "-o", f.out],
        ("--max-iter",)),
    "fit gmm: n-init 0": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", 2, "--n-init", 0, "-o", f.out], ("--n-init",)),
    "fit gmm: negative reg-covar": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", 2, "--reg-covar", "-1", "-o", f.out],
        ("--reg-covar",)),
    "fit gmm: K not an integer": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", "2.5", "-o", f.out], ("-k/--n-components",)),
    "fit gmm: unknown acceleration": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", 2, "--accelerate", "fast", "-o", f.out],
        ("acceleration 'fast'",)),
    "fit gmm: --chunk-size on a CSV file": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", 2, "--chunk-size", 100, "-o", f.out],
        ("faithful.csv", "--chunk-size")),
    "fit gmm: --resume without --checkpoint": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", 2, "--resume", "-o", f.out], ("--checkpoint",)),
    "fit gmm: garbage checkpoint to resume from": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", 2, "--checkpoint",
                   f.file("fit.npz", junk()), "--resume", "-o", f.out], ("fit.npz",)),
    "fit gmm: checkpoint in a missing folder": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", 2, "--checkpoint",
                   f.folder / "gone" / "fit.npz", "-o", f.out], ("gone", "does not exist")),
    "fit gmm: output is a folder": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", 2, "-o", f.folder], ("it is a folder",)),
    "fit gmm: a .npy file that is not one": (
        lambda f: ["fit", "gmm", f.file("rows.npy", "a,b\n1,2\n"), "-k", 1, "-o", f.out],
        ("rows.npy",)),
    "fit gmm: a Parquet file that is not one": (
        lambda f: ["fit", "gmm", f.file("rows.parquet", SMALL), "-k", 1, "-o", f.out],
        ("rows.parquet",)),
    "fit gmm: a header and an index column only": (
        lambda f: ["fit", "gmm", f.file("indexonly.csv", ",a,b\n"), "-k", 1, "-o", f.out],
        ("indexonly.csv",)),
    "fit gmm: one row": (
        lambda f: ["fit", "gmm", f.file("one.csv", "a,b\n1,2\n"), "-k", 1, "-o", f.out],
        ("one.csv", "2 rows")),
    "fit gmm: missing .npy (streamed)": (
        lambda f: ["fit", "gmm", f.folder / "big.npy", "-k", 1, "-o", f.out], ("big.npy",)),
    "fit gmm: a 1-D .npy array": (
        lambda f: ["fit", "gmm", npy(f.folder / "vector.npy", np.arange(5.0)), "-k", 1,
                   "-o", f.out], ("vector.npy", "2-D")),
    "fit gmm: missing Parquet file, streamed": (
        lambda f: ["fit", "gmm", f.folder / "rows.pq", "-k", 1, "--chunk-size", 10, "-o", f.out],
        ("rows.pq",)),
    "fit gmm: --no-header on a file with a header": (
        lambda f: ["fit", "gmm", FAITHFUL, "-k", 1, "--no-header", "-o", f.out],
        ("faithful.csv", "'eruptions'")),
    # ---------------------------------------------------------------- fit hmm
    "fit hmm: missing file": (
        lambda f: ["fit", "hmm", f.folder / "series.csv", "-k", 2, "-o", f.out],
        ("series.csv",)),
    "fit hmm: unknown --lengths-column": (
        lambda f: ["fit", "hmm", FAITHFUL, "-k", 2, "--lengths-column", "patient", "-o", f.out],
        ("'patient'", "faithful.csv")),
    "fit hmm: interleaved sequence ids": (
        lambda f: ["fit", "hmm", f.file("interleaved.csv", INTERLEAVED), "-k", 2,
                   "--lengths-column", "id", "-o", f.out], ("interleaved.csv", "'a'", "row 7")),
    "fit hmm: a row without a sequence id": (
        lambda f: ["fit", "hmm", f.file("gapped.csv", GAPPED_IDS), "-k", 1, "--lengths-column",
                   "id", "-o", f.out], ("gapped.csv", "empty")),
    "fit hmm: K > frames": (
        lambda f: ["fit", "hmm", f.file("short.csv", SMALL), "-k", 9, "-o", f.out],
        ("short.csv",)),
    "fit hmm: K=0": (
        lambda f: ["fit", "hmm", FAITHFUL, "-k", 0, "-o", f.out], ("-k/--n-components",)),
    "fit hmm: non-numeric column": (
        lambda f: ["fit", "hmm", PENGUINS, "-k", 2, "-o", f.out], ("penguins.csv", "species")),
    "fit hmm: unknown init": (
        lambda f: ["fit", "hmm", FAITHFUL, "-k", 2, "--init", "magic", "-o", f.out],
        ("initialisation 'magic'",)),
    "fit hmm: output into a missing folder": (
        lambda f: ["fit", "hmm", FAITHFUL, "-k", 2, "-o", bad_output_folder(f)],
        ("no such folder", "does not exist")),
    # ---------------------------------------------------------------- fit dmm
    "fit dmm: negative counts": (
        lambda f: ["fit", "dmm", f.file("negative.csv", "a,b\n1,2\n-3,4\n5,6\n"), "-k", 1,
                   "-o", f.out], ("negative.csv", "column 'a' holds -3 in data row 2")),
    "fit dmm: fractional counts": (
        lambda f: ["fit", "dmm", f.file("fractions.csv", "a,b\n1,2\n3.5,4\n5,6\n"), "-k", 1,
                   "-o", f.out], ("fractions.csv", "column 'a' holds 3.5 in data row 2")),
    "fit dmm: an infinite count": (
        lambda f: ["fit", "dmm", f.file("huge.csv", "a,b\n1,2\n3,inf\n"), "-k", 1, "-o", f.out],
        ("huge.csv", "column 'b' holds inf in data row 2")),
    "fit dmm: missing file": (
        lambda f: ["fit", "dmm", f.folder / "counts.csv", "-k", 2, "-o", f.out],
        ("counts.csv",)),
    "fit dmm: data is a folder": (
        lambda f: ["fit", "dmm", f.folder, "-k", 2, "-o", f.out], ("{folder}",)),
    "fit dmm: empty file": (
        lambda f: ["fit", "dmm", f.file("nothing.csv", ""), "-k", 1, "-o", f.out],
        ("nothing.csv",)),
    "fit dmm: header only": (
        lambda f: ["fit", "dmm", f.file("names.csv", "a,b,c\n"), "-k", 1, "-o", f.out],
        ("names.csv",)),
    "fit dmm: no numeric column": (
        lambda f: ["fit", "dmm", f.file("labels.csv", "a,b\nx,y\nz,w\n"), "-k", 1, "-o", f.out],
        ("labels.csv",)),
    "fit dmm: ragged rows": (
        lambda f: ["fit", "dmm", f.file("ragged.csv", "a,b,c\n1,2,3\n4,5\n"), "-k", 1,
                   "-o", f.out], ("ragged.csv",)),
    "fit dmm: K > samples": (
        lambda f: ["fit", "dmm", f.file("few.csv", "a,b\n1,2\n3,4\n"), "-k", 5, "-o", f.out],
        ("few.csv",)),
    "fit dmm: binary junk": (
        lambda f: ["fit", "dmm", f.file("junk.tsv", junk()), "-k", 1, "-o", f.out],
        ("junk.tsv",)),
    # ---------------------------------------------------------------- fit fixed
    "fit fixed: negative likelihoods": (
        lambda f: ["fit", "fixed", f.file("lik.csv", "m1,m2\n0.5,0.2\n-0.1,0.3\n"), "-o", f.out],
        ("lik.csv",)),
    "fit fixed: a row no model explains": (
        lambda f: ["fit", "fixed", f.file("zero.csv", "m1,m2\n0.5,0.2\n0,0\n"), "-o", f.out],
        ("zero.csv",)),
    "fit fixed: a missing likelihood": (
        lambda f: ["fit", "fixed", f.file("hole.csv", "m1,m2\n0.5,0.2\n,0.3\n"), "-o", f.out],
        ("hole.csv",)),
    "fit fixed: garbage .npz": (
        lambda f: ["fit", "fixed", f.file("sparse.npz", junk()), "-o", f.out], ("sparse.npz",)),
    "fit fixed: missing .npz": (
        lambda f: ["fit", "fixed", f.folder / "absent.npz", "-o", f.out], ("absent.npz",)),
    "fit fixed: --columns with a .npz file": (
        lambda f: ["fit", "fixed", f.file("cols.npz", junk()), "--columns", "a", "-o", f.out],
        ("--columns",)),
    "fit fixed: prior below 1": (
        lambda f: ["fit", "fixed", f.file("lik2.csv", "m1,m2\n0.5,0.2\n0.1,0.3\n"), "--prior",
                   "0.5", "-o", f.out], ("prior",)),
    "fit fixed: non-numeric column": (
        lambda f: ["fit", "fixed", PENGUINS, "-o", f.out], ("penguins.csv", "species")),
    "fit fixed: +inf log-likelihood": (
        lambda f: ["fit", "fixed", f.file("loginf.csv", "m1,m2\n-0.5,inf\n-1,-0.3\n"), "--log",
                   "-o", f.out], ("loginf.csv", "+inf")),
    # ---------------------------------------------------------------- fit tones
    "fit tones: missing WAV": (
        lambda f: ["fit", "tones", f.folder / "clip.wav", "-k", 1, "-o", f.out], ("clip.wav",)),
    "fit tones: a WAV that is not a WAV": (
        lambda f: ["fit", "tones", f.file("fake.wav", SMALL), "-k", 1, "-o", f.out],
        ("fake.wav",)),
    "fit tones: stereo WAV": (
        lambda f: ["fit", "tones", f.wav("stereo.wav", channels=2), "-k", 1, "-o", f.out],
        ("stereo.wav", "2 channels")),
    "fit tones: WAV without samples": (
        lambda f: ["fit", "tones", f.wav("silent.wav", frames=0), "-k", 1, "-o", f.out],
        ("silent.wav", "no samples")),
    "fit tones: a folder": (
        lambda f: ["fit", "tones", f.folder, "-k", 1, "-o", f.out], ("{folder}",)),
    "fit tones: WAV cut inside its header": (
        lambda f: ["fit", "tones", f.file("stub.wav", f.wav("full.wav").read_bytes()[:30]),
                   "-k", 1, "-o", f.out], ("stub.wav",)),
    "fit tones: truncated WAV": (
        lambda f: ["fit", "tones", f.half_of(f.wav("whole.wav"), "cut.wav"), "-k", 1,
                   "-o", f.out], ("cut.wav", "truncated")),
    # ---------------------------------------------------------------- select gmm
    "select gmm: missing file": (
        lambda f: ["select", "gmm", f.folder / "data.csv", "-k", "1-3", "-o", f.out],
        ("data.csv",)),
    "select gmm: every K beyond the rows": (  # some beyond: skipped with a note
        lambda f: ["select", "gmm", f.file("tiny.csv", SMALL), "-k", "5-6", "-o", f.out],
        ("tiny.csv", "larger than the number of rows")),
    "select gmm: bad covariance type": (
        lambda f: ["select", "gmm", FAITHFUL, "--covariance", "full,round", "-o", f.out],
        ("covariance type 'round'",)),
    "select gmm: laplace criterion": (
        lambda f: ["select", "gmm", FAITHFUL, "--criterion", "laplace", "-o", f.out],
        ("laplace is for dmm",)),
    "select gmm: unknown criterion": (
        lambda f: ["select", "gmm", FAITHFUL, "--criterion", "mdl", "-o", f.out],
        ("criterion 'mdl'",)),
    "select gmm: K=0 in the range": (
        lambda f: ["select", "gmm", FAITHFUL, "-k", "0-3", "-o", f.out], ("invalid K range",)),
    "select gmm: output into a missing folder": (
        lambda f: ["select", "gmm", FAITHFUL, "-k", "1-2", "-o", bad_output_folder(f)],
        ("no such folder", "does not exist")),
    "select gmm: non-numeric column": (
        lambda f: ["select", "gmm", PENGUINS, "-o", f.out], ("penguins.csv", "species")),
    # ---------------------------------------------------------------- select dmm
    "select dmm: missing file": (
        lambda f: ["select", "dmm", f.folder / "otu.csv", "-o", f.out], ("otu.csv",)),
    "select dmm: K range beyond the samples": (
        lambda f: ["select", "dmm", f.file("four.csv", COUNTS4), "-k", "1-6", "-o", f.out],
        ("four.csv", "4 samples")),
    "select dmm: unknown criterion": (
        lambda f: ["select", "dmm", TWINS, "--criterion", "icl", "-o", f.out],
        ("--criterion",)),
    "select dmm: negative counts": (
        lambda f: ["select", "dmm", f.file("neg.csv", "a,b\n1,2\n-3,4\n5,6\n"), "-k", "1-2",
                   "-o", f.out], ("neg.csv", "column 'a' holds -3")),
    # ---------------------------------------------------------------- predict
    "predict: missing model file": (
        lambda f: ["predict", f.folder / "model.emkit", FAITHFUL, "-o", f.csv_out],
        ("model.emkit",)),
    "predict: model is a folder": (
        lambda f: ["predict", f.folder, FAITHFUL, "-o", f.csv_out], ("{folder}",)),
    "predict: garbage model file": (
        lambda f: ["predict", f.file("garbage.emkit", junk()), FAITHFUL, "-o", f.csv_out],
        ("garbage.emkit",)),
    "predict: empty model file": (
        lambda f: ["predict", f.file("empty.emkit", b""), FAITHFUL, "-o", f.csv_out],
        ("empty.emkit",)),
    "predict: truncated model file": (
        lambda f: ["predict", f.half_of(f.models.gmm, "half.emkit"), FAITHFUL, "-o", f.csv_out],
        ("half.emkit",)),
    "predict: missing data file": (
        lambda f: ["predict", f.models.gmm, f.folder / "new.csv", "-o", f.csv_out],
        ("new.csv",)),
    "predict: data without the model's columns": (
        lambda f: ["predict", f.models.gmm, f.file("other.csv", THREE_COLUMNS), "-o", f.csv_out],
        ("other.csv", "eruptions")),
    "predict: width mismatch": (
        lambda f: ["predict", f.models.gmm, f.file("wide.csv", THREE_COLUMNS), "--columns",
                   "x,y,z", "-o", f.csv_out], ("wide.csv", "fitted on 2 columns")),
    "predict: a tones model on a table": (
        lambda f: ["predict", f.models.tones, FAITHFUL, "-o", f.csv_out],
        ("tones.emkit", "SuperimposedSignals")),
    "predict: a dmm model on fractional counts": (
        lambda f: ["predict", f.models.dmm, f.file("frac.csv", "a,b,c\n1.5,2,3\n1,2,3\n"),
                   "-o", f.csv_out], ("frac.csv",)),
    "predict: an hmm model with interleaved ids": (
        lambda f: ["predict", f.models.hmm, f.file("mixed.csv", "id,eruptions,waiting\n"
                                                   "a,1.8,54\nb,4.5,80\na,2.0,60\n"),
                   "--lengths-column", "id", "-o", f.csv_out], ("mixed.csv", "'a'")),
    "predict: a fixed mixture on negative likelihoods": (
        lambda f: ["predict", f.models.fixed, f.file("negl.csv", "m1,m2\n0.5,0.2\n-1,0.3\n"),
                   "-o", f.csv_out], ("negl.csv",)),
    "predict: --lengths-column with a mixture": (
        lambda f: ["predict", f.models.gmm, FAITHFUL, "--lengths-column", "waiting",
                   "-o", f.csv_out], ("gmm.emkit", "hidden Markov")),
    "predict: data is binary junk": (
        lambda f: ["predict", f.models.gmm, f.file("junk.dat", junk()), "-o", f.csv_out],
        ("junk.dat",)),
    "predict: a fixed mixture on a sparse matrix of the wrong width": (
        lambda f: ["predict", f.models.fixed, sparse_npz(f.folder / "three.npz", 3),
                   "-o", f.csv_out], ("three.npz", "3 features")),
    # ---------------------------------------------------------------- score
    "score: missing model file": (
        lambda f: ["score", f.folder / "fit.emkit", FAITHFUL], ("fit.emkit",)),
    "score: garbage model file": (
        lambda f: ["score", f.file("noise.emkit", junk()), FAITHFUL], ("noise.emkit",)),
    "score: a tones model on a table": (
        lambda f: ["score", f.models.tones, FAITHFUL], ("tones.emkit", "SuperimposedSignals")),
    "score: width mismatch": (
        lambda f: ["score", f.models.hmm, f.file("wide3.csv", THREE_COLUMNS), "--columns",
                   "x,y,z"], ("wide3.csv", "fitted on 2 columns")),
    "score: an hmm model with an unknown --lengths-column": (
        lambda f: ["score", f.models.hmm, FAITHFUL, "--lengths-column", "patient"],
        ("faithful.csv", "'patient'")),
    "score: data is a folder": (
        lambda f: ["score", f.models.gmm, f.folder], ("{folder}",)),
    "score: a fixed mixture on a .npy file": (
        lambda f: ["score", f.models.fixed, npy(f.folder / "lik.npy", np.ones((3, 2)))],
        ("lik.npy", "binary")),
    "score: header-only data": (
        lambda f: ["score", f.models.gmm, f.file("head.csv", "eruptions,waiting\n")],
        ("head.csv",)),
    # ---------------------------------------------------------------- impute
    "impute: missing file": (
        lambda f: ["impute", f.folder / "survey.csv", "-o", f.csv_out], ("survey.csv",)),
    "impute: data is a folder": (
        lambda f: ["impute", f.folder, "-o", f.csv_out], ("{folder}",)),
    "impute: K=0": (
        lambda f: ["impute", FAITHFUL, "-k", 0, "-o", f.csv_out], ("-k/--n-components",)),
    "impute: K > rows": (
        lambda f: ["impute", f.file("rows4.csv", "a,b\n1,2\n2,\n3,1\n4,4\n"), "-k", 9,
                   "-o", f.csv_out], ("rows4.csv",)),
    "impute: output into a missing folder": (
        lambda f: ["impute", FAITHFUL, "-o", f.folder / "no such folder" / "filled.csv"],
        ("no such folder", "does not exist")),
    "impute: draws into a missing folder": (
        lambda f: ["impute", FAITHFUL, "--draws", 2, "-o", f.folder / "nope" / "filled.csv"],
        ("nope", "does not exist")),
    "impute: no numeric column": (
        lambda f: ["impute", f.file("text.csv", "a,b\nx,y\nz,\n"), "-o", f.csv_out],
        ("text.csv",)),
    "impute: bad covariance type": (
        lambda f: ["impute", FAITHFUL, "--covariance", "round", "-o", f.csv_out],
        ("covariance type 'round'",)),
    "impute: binary junk": (
        lambda f: ["impute", f.file("junk.csv", junk()), "-o", f.csv_out], ("junk.csv",)),
    "impute: empty file": (
        lambda f: ["impute", f.file("blank.csv", ""), "-o", f.csv_out], ("blank.csv",)),
    "impute: ragged rows": (
        lambda f: ["impute", f.file("uneven.csv", "a,b\n1,2\n,3,4\n5,6\n"), "-o", f.csv_out],
        ("uneven.csv",)),
    "impute: unknown --columns name": (
        lambda f: ["impute", FAITHFUL, "--columns", "eruptions,height", "-o", f.csv_out],
        ("faithful.csv", "'height'")),
    # ---------------------------------------------------------------- info
    "info: missing file": (lambda f: ["info", f.folder / "gone.emkit"], ("gone.emkit",)),
    "info: a folder": (lambda f: ["info", f.folder], ("{folder}",)),
    "info: garbage": (lambda f: ["info", f.file("rubbish.emkit", junk())], ("rubbish.emkit",)),
    "info: empty file": (lambda f: ["info", f.file("zero.emkit", b"")], ("zero.emkit",)),
    "info: a CSV file": (lambda f: ["info", FAITHFUL], ("faithful.csv",)),
    "info: a numpy .npz archive": (
        lambda f: ["info", npz_archive(f.folder / "arrays.npz")], ("arrays.npz",)),
    "info: a zip of something else": (
        lambda f: ["info", zip_archive(f.folder / "docs.zip")], ("docs.zip",)),
    "info: truncated model file": (
        lambda f: ["info", f.half_of(f.models.hmm, "cut.emkit")], ("cut.emkit",)),
    # ---------------------------------------------------------------- demo
    "demo: output is an existing file": (
        lambda f: ["demo", "--quick", "--output", f.out], ("kept.emkit", "is a file")),
    "demo: output under a file": (
        lambda f: ["demo", "--quick", "--output", f.out / "report"],
        ("kept.emkit", "is a file")),
}


def npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def sparse_npz(path: Path, n_models: int) -> Path:
    import scipy.sparse as sp

    sp.save_npz(path, sp.csr_matrix(np.full((4, n_models), 0.5)))
    return path


def npz_archive(path: Path) -> Path:
    np.savez(path, a=np.arange(3))
    return path


def zip_archive(path: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    return path


def snapshot(*folders: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for folder in folders for path in folder.rglob("*")
            if path.is_file()}


def test_the_catalogue_is_large_and_covers_every_command():
    assert len(CASES) >= 60
    commands = {case.split(":")[0] for case in CASES}
    assert commands == {"fit gmm", "fit hmm", "fit dmm", "fit fixed", "fit tones", "select gmm",
                        "select dmm", "predict", "score", "impute", "info", "demo"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_touches_nothing(case, models, tmp_path, capsys):
    build, expected = CASES[case]
    files = Files(tmp_path, models)
    argv = build(files)
    before = snapshot(tmp_path, models.folder)
    status, out, err = run(capsys, *argv)
    assert (status, out) == (2, ""), err
    assert err.startswith("emkit: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "allow_pickle" not in err
    for text in expected:
        text = text.format(folder=tmp_path)
        assert text in err, (text, err)
    assert snapshot(tmp_path, models.folder) == before


def test_classic_mac_line_ends_are_read_not_refused(tmp_path, capsys):
    # Excel's "CSV (Macintosh)" ends lines with a bare carriage return; the csv module's
    # reader used to stop on it (found by the "model file as data" case): the same fit as \n.
    rows = "".join(f"{x!r},{y!r}{{end}}" for x, y in
                   np.random.default_rng(2).normal(size=(20, 2)).tolist())
    fits = []
    for end in ("\n", "\r", "\r\n"):
        path = tmp_path / f"end{len(fits)}.csv"
        path.write_bytes(("a,b" + end + rows.replace("{end}", end)).encode())
        status, out, err = run(capsys, "fit", "gmm", path, "-k", 1, "--json")
        assert status == 0, err
        fits.append(out)
    assert fits[0] == fits[1] == fits[2]
