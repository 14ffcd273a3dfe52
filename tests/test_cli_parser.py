"""The structure of the ``emkit`` command line: nested commands with only their own options,
defaults that are the estimators' own, help with examples, a light start-up, Ctrl-C, and a
package without import cycles or private imports.

The references are independent of the parser: the estimators' signatures (``inspect``), the
estimators built with their defaults, and the source files' own import statements (``ast``).
"""

import argparse
import ast
import importlib
import inspect
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import emkit.cli
from emkit import datasets
from emkit.cli import (
    build_parser,
    common,
    defaults,
    dmm,
    fixed,
    gmm,
    hmm,
    impute,
    main,
    mixtures,
    tones,
)

FAITHFUL = datasets.path("faithful")
CLI_SOURCES = sorted(Path(emkit.cli.__file__).parent.glob("*.py"))


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def subcommand_parsers(parser=None, path=()):
    """(command path, parser) of every command that runs, e.g. (("fit", "gmm"), parser)."""
    parser = parser or build_parser()
    children = [action for action in parser._actions
                if isinstance(action, argparse._SubParsersAction)]
    if not children:
        yield path, parser
    for action in children:
        for name, child in action.choices.items():
            yield from subcommand_parsers(child, (*path, name))


COMMANDS = [path for path, _ in subcommand_parsers()]


def test_every_command_is_listed():
    assert sorted(COMMANDS) == sorted([
        ("fit", "gmm"), ("fit", "hmm"), ("fit", "dmm"), ("fit", "fixed"), ("fit", "tones"),
        ("fit", "poisson"), ("fit", "bernoulli"), ("fit", "categorical"), ("fit", "student"),
        ("fit", "regression"), ("predict",), ("score",), ("select", "gmm"), ("select", "dmm"),
        ("select", "poisson"), ("select", "bernoulli"), ("select", "categorical"),
        ("select", "student"), ("select", "regression"), ("impute",), ("info",), ("demo",)])


# ------------------------------------------------------------------------------ help
@pytest.mark.parametrize("command", COMMANDS + [("fit",), ("select",)], ids=" ".join)
def test_help_of_every_command_has_an_example(command, capsys):
    status, out, _ = run(capsys, *command, "--help")
    assert status == 0
    assert re.search(r"^examples?:$", out, re.MULTILINE)
    examples = out[re.search(r"^examples?:$", out, re.MULTILINE).end():]
    assert f"  emkit {' '.join(command)} " in examples


def test_help_differs_per_kind(capsys):
    texts = {kind: run(capsys, "fit", kind, "--help")[1]
             for kind in ("gmm", "hmm", "dmm", "fixed", "tones")}
    assert len(set(texts.values())) == 5
    assert "--lengths-column" in texts["hmm"] and "--lengths-column" not in texts["gmm"]
    assert "--checkpoint" in texts["gmm"] and "--checkpoint" not in texts["hmm"]


# ------------------------------------------------------------------------------ own options only
IRRELEVANT = [
    ["fit", "gmm", "data.csv", "-k", "2", "--lengths-column", "x"],
    ["fit", "gmm", "data.csv", "-k", "2", "--log"],
    ["fit", "gmm", "data.csv", "-k", "2", "--samples-in-columns"],
    ["fit", "hmm", "data.csv", "-k", "2", "--checkpoint", "c.npz"],
    ["fit", "hmm", "data.csv", "-k", "2", "--float32"],
    ["fit", "hmm", "data.csv", "-k", "2", "--chunk-size", "100"],
    ["fit", "dmm", "data.csv", "-k", "2", "--columns", "a,b"],
    ["fit", "dmm", "data.csv", "-k", "2", "--covariance", "diag"],
    ["fit", "dmm", "data.csv", "-k", "2", "--resume"],
    ["fit", "fixed", "data.csv", "-k", "2"],
    ["fit", "fixed", "data.csv", "--seed", "1"],
    ["fit", "fixed", "data.csv", "--n-init", "3"],
    ["fit", "tones", "clip.wav", "-k", "2", "--columns", "a"],
    ["fit", "tones", "clip.wav", "-k", "2", "--drop-missing"],
    ["select", "gmm", "data.csv", "--samples-in-columns"],
    ["select", "dmm", "data.csv", "--plot", "bic.png"],
    ["select", "dmm", "data.csv", "--covariance", "full"],
    ["impute", "data.csv", "--accelerate", "squarem"],
    ["impute", "data.csv", "--json"],
    ["info", "model.emkit", "--columns", "a"],
    ["score", "model.emkit", "data.csv", "--proba"],
]


@pytest.mark.parametrize("argv", IRRELEVANT, ids=" ".join)
def test_an_irrelevant_option_is_a_usage_error(argv, tmp_path, capsys):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert err.startswith("emkit: error: unrecognized arguments: ") and err.count("\n") == 1
    command = " ".join(argv[:2] if argv[0] in ("fit", "select") else argv[:1])
    assert err.endswith(f"(see 'emkit {command} --help')\n")


def test_k_is_spelled_the_same_by_every_command():
    parser = build_parser()
    for flag in ("-k", "--k", "--n-components"):
        assert parser.parse_args(["fit", "gmm", "d.csv", flag, "3"]).n_components == 3
        assert parser.parse_args(["fit", "tones", "d.wav", flag, "3"]).n_components == 3
        for kind in ("gmm", "dmm"):
            args = parser.parse_args(["select", kind, "d.csv", flag, "2-4"])
            assert args.estimator_options["select"]["n_components"] == [2, 3, 4]
        args = parser.parse_args(["impute", "d.csv", flag, "2"])
        assert args.estimator_options["impute"]["n_components"] == 2


def test_a_missing_k_is_a_usage_error(capsys):
    status, _, err = run(capsys, "fit", "hmm", FAITHFUL)
    assert status == 2 and "-k/--n-components" in err and err.count("\n") == 1


def test_lengths_column_is_refused_for_a_model_without_sequences(tmp_path, capsys):
    model = tmp_path / "m.emkit"
    assert main(["fit", "gmm", str(FAITHFUL), "-k", "1", "-o", str(model)]) == 0
    capsys.readouterr()
    for command in ("predict", "score"):
        status, out, err = run(capsys, command, model, FAITHFUL, "--lengths-column", "waiting")
        assert status == 2 and out == ""
        assert "--lengths-column is for hidden Markov models" in err and err.count("\n") == 1


# ------------------------------------------------------------------------------ defaults
# What the command line sets itself, on purpose: a fixed seed (a run repeats), a progress bar
# only on a terminal, and impute's single fill without --draws.
CLI_CHOICES = {"random_state": 0, "progress": False}


def estimators_built_from(tmp_path):
    """(kind, the estimator the command line builds with no option given, the estimator
    Python builds with its defaults)."""
    from emkit import (
        DirichletMultinomialMixture,
        EMImputer,
        FixedMixture,
        GaussianHMM,
        GaussianMixture,
        SuperimposedSignals,
    )

    parse = build_parser().parse_args
    return [
        ("gmm", gmm.build_estimator(parse(["fit", "gmm", "d.csv", "-k", "3"]), 3),
         GaussianMixture(3)),
        ("hmm", hmm.build_estimator(parse(["fit", "hmm", "d.csv", "-k", "3"])), GaussianHMM(3)),
        ("dmm", dmm.build_estimator(parse(["fit", "dmm", "d.csv", "-k", "3"]), 3),
         DirichletMultinomialMixture(3)),
        ("fixed", fixed.build_estimator(parse(["fit", "fixed", "d.csv"])), FixedMixture()),
        ("tones", tones.build_estimator(parse(["fit", "tones", "d.wav", "-k", "3"]), 8000),
         SuperimposedSignals("tones", 3, sample_rate=8000)),
        ("impute", impute.build_estimator(parse(["impute", "d.csv"])),
         EMImputer(n_imputations=1)),
        ("select gmm", gmm.build_estimator(parse(["select", "gmm", "d.csv"]), 1),
         GaussianMixture(1)),
        ("select dmm", dmm.build_estimator(parse(["select", "dmm", "d.csv"]), 1),
         DirichletMultinomialMixture(1)),
        *((f"fit {kind}", mixtures.build_estimator(parse(["fit", kind, "d.csv", "-k", "3"] + (
            ["--response", "y"] if kind == "regression" else []))),
           mixtures.estimator_class(kind)(3)) for kind in mixtures.KINDS),
    ]


def test_select_of_a_family_passes_the_estimators_defaults(monkeypatch):
    """emkit select KIND passes select_model only the options given, the seed and progress:
    every other parameter is the family estimator's default."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    for kind in mixtures.KINDS:
        argv = ["select", kind, "d.csv"] + (["--response", "y"] if kind == "regression" else [])
        args = build_parser().parse_args(argv)
        assert common.estimator_options(args, "select") == {}
        assert common.common_keywords(args, kind) == CLI_CHOICES


def test_cli_defaults_are_the_estimators_defaults(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    for kind, cli, python in estimators_built_from(tmp_path):
        assert type(cli) is type(python), kind
        expected = {**python.get_params(), **{name: value for name, value
                                              in CLI_CHOICES.items()
                                              if name in python.get_params()}}
        assert cli.get_params() == expected, kind


def test_select_passes_select_model_its_own_defaults():
    args = build_parser().parse_args(["select", "gmm", "d.csv"])
    assert common.estimator_options(args, "select") == {}  # select_model's defaults apply
    args = build_parser().parse_args(["select", "gmm", "d.csv", "-k", "2-3", "--criterion",
                                      "icl", "--covariance", "diag,full"])
    assert common.estimator_options(args, "select") == {
        "n_components": [2, 3], "criterion": "icl", "covariance_types": ["diag", "full"]}


def test_given_options_reach_the_estimator():
    parse = build_parser().parse_args
    model = dmm.build_estimator(parse(["fit", "dmm", "d.csv", "-k", "2", "--tol", "1e-3",
                                       "--max-iter", "7", "--accelerate", "none", "--n-init",
                                       "4", "--seed", "5"]), 2)
    assert (model.tol, model.max_iter, model.accelerate, model.n_init, model.random_state) == (
        1e-3, 7, None, 4, 5)
    model = fixed.build_estimator(parse(["fit", "fixed", "d.csv", "--log", "--prior", "2"]))
    assert model.log is True and model.prior == 2.0
    model = gmm.build_estimator(parse(["fit", "gmm", "d.csv", "-k", "2", "--covariance", "diag",
                                       "--init", "kmeans", "--reg-covar", "0.1", "--float32"]), 2)
    assert (model.covariance_type, model.init_params, model.reg_covar) == ("diag", "kmeans", 0.1)
    assert model.dtype == np.float32
    assert hmm.build_estimator(parse(["fit", "hmm", "d.csv", "-k", "2", "--init",
                                      "random"])).init == "random"


def estimator_options():
    """(command, action) of every option that is passed to an estimator."""
    for command, parser in subcommand_parsers():
        for action in parser._actions:
            if isinstance(action, common.EstimatorOption):
                yield command, action


def signature(kind):
    module, name = defaults.ESTIMATORS[kind]
    return inspect.signature(getattr(importlib.import_module(module), name)).parameters


def test_defaults_read_from_the_source_are_the_signatures():
    for kind in defaults.ESTIMATORS:
        read = defaults.defaults(kind)
        with_default = {name: parameter.default for name, parameter in signature(kind).items()
                        if parameter.default is not inspect.Parameter.empty}
        assert set(read) == set(with_default), kind
        for name, value in read.items():
            if isinstance(value, defaults.Expression):  # e.g. dtype=np.float64
                assert eval(value, {"np": np}) == with_default[name], (kind, name)
            else:
                assert value == with_default[name], (kind, name)
    for module, name in (("emkit.models.clustering", "INIT_METHODS"),
                         ("emkit.families.gaussian", "COVARIANCE_TYPES")):
        assert defaults.constant(module, name) == getattr(importlib.import_module(module), name)


def help_entry(text: str, flag: str) -> str:
    """The help of the option ``flag`` in a help text, on one line."""
    lines = text[text.index("\noptions:"):].splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith(f"  {flag} ") or line == f"  {flag}")
    end = next((i for i in range(start + 1, len(lines))
                if not lines[i] or re.match(r"  -", lines[i])), len(lines))
    return " ".join(" ".join(lines[start:end]).split())


def test_every_estimator_option_shows_the_estimators_default(capsys):
    assert len(list(estimator_options())) > 40
    for command, action in estimator_options():
        parameters = signature(action.kind)
        assert action.dest in parameters, (command, action.dest)
        value = parameters[action.dest].default
        status, out, _ = run(capsys, *command, "--help")
        shown = ("on" if value else "off") if isinstance(value, bool) else defaults.show(value)
        assert help_entry(out, action.option_strings[0]).endswith(f"(default: {shown})"), (
            command, action.dest)


# ------------------------------------------------------------------------------ start-up
def loaded_after(code: str) -> set[str]:
    """The top-level packages loaded by a fresh Python after running ``code``."""
    probe = (f"import sys, contextlib, io\n{code}\n"
             "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    return set(result.stdout.split())


HEAVY = {"numpy", "scipy", "sklearn", "numba", "pyarrow"}


@pytest.mark.parametrize("argv", [["--help"], ["fit", "gmm", "--help"],
                                  ["select", "dmm", "--help"], ["fit", "gmm", "-k", "0"]])
def test_help_and_usage_errors_load_nothing_heavy(argv):
    code = ("from emkit.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), "
            "contextlib.redirect_stderr(io.StringIO()):\n"
            f"    main({argv!r})")
    assert not loaded_after(code) & HEAVY


def test_import_emkit_loads_nothing_heavy():
    assert not loaded_after("import emkit") & HEAVY


def test_python_m_emkit_runs_the_command_line():
    for module in ("emkit", "emkit.cli"):
        result = subprocess.run([sys.executable, "-m", module, "--version"],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0 and result.stdout.startswith("emkit ")


# ------------------------------------------------------------------------------ Ctrl-C
def start_long_fit(tmp_path, *options):
    """A subprocess fitting a Gaussian mixture that would run for hours."""
    rows = np.random.default_rng(0).normal(size=(100_000, 4))
    np.save(tmp_path / "rows.npy", rows)
    return subprocess.Popen(
        [sys.executable, "-m", "emkit", "fit", "gmm", str(tmp_path / "rows.npy"), "-k", "12",
         "--init", "random", "--tol", "0", "--max-iter", "100000000", *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_deliver_sigint)


def _deliver_sigint():
    """In the child before exec: Ctrl-C handled as a terminal would, whatever this test worker
    inherited. An ignored SIGINT stays ignored across exec (Python then installs no
    KeyboardInterrupt handler) and a blocked one stays blocked; a CI run hung on each once."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def interrupt(process, ready, timeout=120.0):
    """SIGINT once ``ready()``; (exit status, stdout, stderr)."""
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the fit did not get going"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=timeout)
    finally:
        process.kill()
    return process.returncode, out, err


def test_ctrl_c_of_a_checkpointed_fit_says_where_to_resume(tmp_path):
    checkpoint = tmp_path / "fit.npz"
    process = start_long_fit(tmp_path, "--checkpoint", str(checkpoint))
    status, out, err = interrupt(process, checkpoint.exists)
    assert status == 130 and out == ""
    match = re.fullmatch(r"emkit: interrupted at iteration (\d+); resume with --resume\n", err)
    assert match, err
    assert int(match.group(1)) >= 10  # written every 10 iterations
    assert common.checkpoint_iteration(checkpoint) == int(match.group(1))


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used (user + system, all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_ctrl_c_without_a_checkpoint_is_one_line(tmp_path):
    process = start_long_fit(tmp_path)
    # No file shows that the fit runs. Start-up (imports) takes about a second of CPU: after
    # five the fit is running. A wall-clock wait is not enough on a busy machine, where the
    # signal once came during the imports (Python then dies by SIGINT: exit status -2).
    status, out, err = interrupt(process, lambda: cpu_seconds(process.pid) > 5)
    assert status == 130 and out == ""
    assert err == "emkit: interrupted\n"


def test_ctrl_c_during_numba_compilation_is_sent_again(monkeypatch):
    """A Ctrl-C that comes while numba's or llvmlite's code runs (a kernel compiling, where a
    KeyboardInterrupt can be dropped inside a ctypes callback) is held and sent again; one that
    comes anywhere else stops the command at once."""
    import types

    from emkit import cli

    sent = []
    monkeypatch.setattr(cli.os, "kill", lambda pid, sig: sent.append((pid, sig)))

    def frame(module, back=None):
        return types.SimpleNamespace(f_globals={"__name__": module}, f_back=back)

    compiling = frame("llvmlite.binding.executionengine", frame("numba.core.dispatcher",
                                                                  frame("emkit.core.engine")))
    assert cli._on_interrupt(signal.SIGINT, compiling) is None
    deadline = time.monotonic() + 5.0
    while not sent and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sent == [(os.getpid(), signal.SIGINT)]
    with pytest.raises(KeyboardInterrupt):
        cli._on_interrupt(signal.SIGINT, frame("emkit.core.engine", frame("numpy.linalg")))


# ------------------------------------------------------------------------------ package
def imports_of(path: Path):
    """(node, imported module, names, inside a function) of every import in a source file."""
    tree = ast.parse(path.read_text())
    functions = [node for node in ast.walk(tree)
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    nested = {id(child) for function in functions for child in ast.walk(function)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module, [alias.name for alias in node.names], id(node) in nested
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], id(node) in nested


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_cli_module_imports_private_names():
    offences = []
    for path in CLI_SOURCES:
        tree = ast.parse(path.read_text())
        for module, names, _ in imports_of(path):
            offences += [f"{path.name}: from {module} import {name}" for name in names
                         if is_private(name)]
        # ... nor reaches them through an imported module (common._helper).
        imported = {(alias.asname or alias.name).split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
        offences += [f"{path.name}: {node.value.id}.{node.attr}" for node in ast.walk(tree)
                     if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                     and node.value.id in imported and is_private(node.attr)]
    assert offences == []


def test_cli_modules_import_each_other_without_cycles_at_module_level():
    names = {path.stem for path in CLI_SOURCES}
    graph = {}
    for path in CLI_SOURCES:
        edges = set()
        for module, imported, in_function in imports_of(path):
            targets = {module} | {f"{module}.{name}" for name in imported}
            cli = {target.removeprefix("emkit.cli.") for target in targets
                   if target.startswith("emkit.cli.")} & names
            assert not (cli and in_function), f"{path.name} imports {cli} inside a function"
            edges |= cli
        graph[path.stem] = edges
    graph["__init__"] = set()  # the package imports its modules; they import it only as a path

    def visit(name, trail):
        assert name not in trail, f"import cycle: {' -> '.join((*trail, name))}"
        for child in graph[name]:
            visit(child, (*trail, name))

    for name in graph:
        visit(name, ())


def test_select_json_names_the_criterion_used(capsys):
    status, out, err = run(capsys, "select", "gmm", FAITHFUL, "-k", "1-2", "--json")
    assert status == 0, err
    assert json.loads(out)["criterion"] == "bic"  # select_model's default
