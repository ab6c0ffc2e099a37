"""Issue 12: every mistake on `train`, `prepare` and `demo` is one line on stderr, exit code 2, no traceback.

Each case runs the command's ``main`` on bad input and checks the line names the file, field or value; a
representative case of each kind also runs as a subprocess (``python -m feedback_ner.<cmd>``), which proves the
process boundary (exit code, nothing printed before the line) without paying a Python start-up per case.
The checks come before any model or corpus is loaded.
"""

from __future__ import annotations

import importlib
import json
import shutil
import types
from pathlib import Path

import pytest
import yaml
from conftest import assert_one_line_error, run_cli, small_config


def _yaml(tmp: Path, text: str) -> Path:
    path = tmp / "cfg.yaml"
    path.write_text(text)
    return path


def _good(tmp: Path, corpus: Path, model: Path, **extra) -> dict:
    return small_config(corpus, model, tmp / "run", **extra)


def _model_copy(tmp: Path, model: Path, damage: str) -> Path:
    """A copy of a tiny model folder with one kind of damage."""
    out = tmp / "model"
    if damage == "empty":
        out.mkdir()
        return out
    shutil.copytree(model, out)
    if damage == "config":
        (out / "config.json").write_text("{ not json")
    elif damage == "no_model_type":
        config = json.loads((out / "config.json").read_text())
        config.pop("model_type", None)
        (out / "config.json").write_text(json.dumps(config))
    elif damage == "tokenizer":
        for f in out.iterdir():
            if f.name.startswith(("tokenizer", "vocab", "merges", "special_tokens", "spm")):
                f.unlink()
    elif damage == "weights":
        weights = out / "model.safetensors"
        weights.write_bytes(b"\x07\x00garbage" * 10)
    return out


def _config_case(text: str):
    """A case whose YAML is ``text`` (no paths needed)."""
    return lambda tmp, corpus, model: ["--config", str(_yaml(tmp, text))]


def _values_case(**values):
    """A case whose YAML is the good small config with ``values`` on top."""

    def make(tmp, corpus, model):
        return ["--config", str(_yaml(tmp, yaml.safe_dump(_good(tmp, corpus, model, **values))))]

    return make


def _model_case(damage: str):
    def make(tmp, corpus, model):
        broken = tmp / "missing" if damage == "missing" else _model_copy(tmp, model, damage)
        values = _good(tmp, corpus, broken)
        return ["--config", str(_yaml(tmp, yaml.safe_dump(values)))]

    return make


def _blocked_cache_case(default: bool):
    """The cache folder cannot be made: a file stands where it (or, for ``cache_dir``, its parent) would go."""

    def make(tmp, corpus, model):
        if default:  # data_dir's default cache, as in a read-only /kaggle/input
            data = tmp / "data"
            data.mkdir()
            shutil.copy(corpus / "train.csv", data / "train.csv")
            (data / "train").symlink_to(corpus / "train")
            (data / ".feedback_ner_cache").write_text("a file")
            return _values_case(data_dir=str(data), cache_dir=None)(tmp, corpus, model)
        (tmp / "blocker").write_text("a file")
        return _values_case(cache_dir=str(tmp / "blocker" / "cache"))(tmp, corpus, model)

    return make


def _flags_case(*flags: str):
    def make(tmp, corpus, model):
        return ["--config", str(_yaml(tmp, yaml.safe_dump(_good(tmp, corpus, model)))), *flags]

    return make


def _queue_case(second_model: str | None = None, *flags: str):
    """A queue of two configs: a good one, then one whose model is ``second_model`` (a missing folder), ``flags`` on
    top of both. Found by probing: the first config trained in full before the second's mistake was seen."""

    def make(tmp, corpus, model):
        first, second = tmp / "first.yaml", tmp / "second.yaml"
        first.write_text(yaml.safe_dump(_good(tmp, corpus, model)))
        bad = tmp / second_model if second_model else model
        second.write_text(yaml.safe_dump(_good(tmp, corpus, bad, output_dir=str(tmp / "run2"))))
        return ["--config", str(first), str(second), *(f.replace("{tmp}", str(tmp)) for f in flags)]

    return make


# (id, command, argv maker(tmp, corpus, model) -> args, needles in the error line; "{tmp}" is replaced)
CASES = [
    ("missing-yaml", "train", lambda tmp, c, m: ["--config", str(tmp / "nope.yaml")], ["nope.yaml", "not found"]),
    ("yaml-is-folder", "train", lambda tmp, c, m: ["--config", str(tmp)], ["config file not found", "folder"]),
    ("malformed-yaml", "train", _config_case("learning_rate: [1e-3\n"), ["cfg.yaml", "not valid YAML", "line"]),
    ("yaml-not-a-mapping", "train", _config_case("- 1\n- 2\n"), ["cfg.yaml", "flat mapping"]),
    ("unknown-field", "train", _config_case("learning_rat: 1e-3\n"),
     ["cfg.yaml", "'learning_rat'", "Did you mean 'learning_rate'"]),
    ("wrong-type", "train", _config_case("learning_rate: abc\n"), ["cfg.yaml", "'learning_rate'", "'abc'"]),
    ("wrong-choice", "train", _config_case("lr_scheduler_type: cosin\n"),
     ["cfg.yaml", "'lr_scheduler_type'", "cosine"]),
    ("max-length-negative", "train", _config_case("max_length: -5\n"), ["cfg.yaml", "max_length=-5"]),
    ("max-length-fraction", "train", _config_case("max_length: 512.5\n"), ["cfg.yaml", "'max_length'", "512.5"]),
    ("stride-too-large", "train", _config_case("max_length: 512\nstride: 600\n"), ["cfg.yaml", "stride=600"]),
    ("strategies-clash", "train", _config_case("eval_strategy: steps\nsave_strategy: epoch\n"),
     ["cfg.yaml", "save and eval strategy"]),
    ("flag-wrong-type", "train", _flags_case("--learning_rate", "abc"), ["--learning_rate", "'abc'"]),
    ("flag-unknown", "train", _flags_case("--lerning_rate", "1e-3"), ["--lerning_rate", "--learning_rate"]),
    ("data-dir-missing", "train", _values_case(data_dir="/nonexistent/kaggle"), ["data_dir", "/nonexistent/kaggle"]),
    ("data-dir-unset", "train", _values_case(data_dir=None), ["data_dir is not set"]),
    ("data-dir-no-train-csv", "train", lambda tmp, c, m: _values_case(data_dir=str(tmp))(tmp, c, m),
     ["data_dir", "no train.csv"]),
    ("cache-dir-not-writable", "train", _blocked_cache_case(default=False),
     ["cache_dir", "blocker/cache", "cannot write there", "writable folder"]),
    ("default-cache-not-writable", "train", _blocked_cache_case(default=True),
     ["cache_dir", "data/.feedback_ner_cache", "inside data_dir", "--cache_dir"]),
    ("null-for-a-number", "train", _config_case("num_train_epochs: null\n"),
     ["cfg.yaml", "'num_train_epochs'", "null is not allowed"]),
    ("scalar-for-a-list", "train", _values_case(folds=1), ["cfg.yaml", "'folds'", "not a list", "[1]"]),
    ("max-essays-negative", "train", _values_case(max_essays=-5), ["max_essays=-5", ">= 1"]),
    ("max-essays-too-few-for-the-folds", "train", _values_case(max_essays=1, folds=[0]),
     ["max_essays 1 keeps 1 essays", "num_folds (2)", "raise max_essays or lower num_folds"]),
    ("eval-max-length-below-stride", "train", _values_case(eval_max_length=30), ["eval_max_length", "stride=32"]),
    ("model-missing", "train", _model_case("missing"), ["model_name_or_path", "missing", "no such folder"]),
    ("model-empty", "train", _model_case("empty"), ["model_name_or_path", "no config.json"]),
    ("model-config-corrupt", "train", _model_case("config"), ["model_name_or_path", "config.json is corrupt"]),
    ("model-no-model-type", "train", _model_case("no_model_type"), ["model_name_or_path", "no model_type"]),
    ("model-no-tokenizer", "train", _model_case("tokenizer"), ["model_name_or_path", "no tokenizer files"]),
    ("model-weights-corrupt", "train", _model_case("weights"), ["model.safetensors is corrupt"]),
    ("fold-out-of-range", "train", _values_case(folds=[0, 5]), ["fold 5", "out of range", "0..1"]),
    ("learning-rate-negative", "train", _values_case(learning_rate=-1), ["cfg.yaml", "learning_rate=-1", "> 0"]),
    ("batch-size-zero", "train", _values_case(per_device_train_batch_size=0),
     ["cfg.yaml", "per_device_train_batch_size=0", ">= 1"]),
    ("epochs-zero", "train", _values_case(num_train_epochs=0), ["cfg.yaml", "num_train_epochs=0", "max_steps"]),
    ("output-dir-is-a-file", "train", lambda tmp, c, m: _values_case(output_dir=str(_yaml(tmp / "..", "x")))(
        tmp, c, m), ["output_dir", "is a file"]),
    ("fold-flag-out-of-range", "train", _flags_case("--folds", "-1"), ["fold -1", "out of range"]),
    # found by probing (2026-12-01): the last of two --folds won silently; abbreviations were taken for fields
    ("queue-second-model-missing", "train", _queue_case("nope"), ["second.yaml", "model_name_or_path", "nope"]),
    ("queue-one-output-dir", "train", _queue_case(None, "--output_dir", "{tmp}/one-dir"),
     ["first.yaml and", "second.yaml both write to output_dir", "its own output_dir"]),
    ("flag-makes-the-config-wrong", "train", _flags_case("--max_length", "32"),
     ["cfg.yaml with --max_length 32: stride=32"]),
    ("flag-given-twice", "train", _flags_case("--folds", "0", "--folds", "1"), ["--folds is given twice"]),
    ("field-flag-given-twice", "train", _flags_case("--learning_rate", "1e-3", "--learning_rate=2e-3"),
     ["--learning_rate is given twice"]),
    ("config-given-twice", "train", _flags_case("--config", "other.yaml"), ["--config is given twice"]),
    ("flag-abbreviated", "train", _flags_case("--learning_rat", "0.1"), ["--learning_rat", "did you mean"]),
    ("folds-abbreviated", "train", _flags_case("--fold", "1"), ["--fold'", "did you mean --folds"]),
    ("prepare-missing-data", "prepare", lambda tmp, c, m: ["--data", str(tmp / "nodata"), "--out", str(tmp / "o")],
     ["nodata"]),
    ("demo-too-few-essays", "demo", lambda tmp, c, m: ["--out", str(tmp / "d"), "--n", "3"], ["--n 3"]),
    ("demo-not-a-number", "demo", lambda tmp, c, m: ["--out", str(tmp / "d"), "--n", "many"], ["--n", "'many'"]),
    ("demo-unknown-arch", "demo", lambda tmp, c, m: ["--out", str(tmp / "d"), "--arch", "gpt"], ["--arch", "'gpt'"]),
    ("demo-missing-config", "demo", lambda tmp, c, m: ["--out", str(tmp / "d"), "--config", str(tmp / "no.yaml")],
     ["no.yaml", "not found"]),
    ("demo-out-is-a-file", "demo", lambda tmp, c, m: ["--out", str(_yaml(tmp, "x"))], ["--out", "is a file"]),
]


def _check(done, cmd: str, needles: list[str], tmp_path: Path) -> None:
    line = assert_one_line_error(done, cmd, *needles)
    assert "sentencepiece" not in line
    if cmd == "demo":
        assert not (tmp_path / "d" / "corpus").exists(), "the demo stops before it generates anything"


@pytest.mark.parametrize("case_id,cmd,make,needles", CASES, ids=[c[0] for c in CASES])
def test_one_line_error(case_id, cmd, make, needles, tmp_path, corpus_dir, tiny_models, capsys):
    """Issue 12: exit 2, one `feedback-ner <cmd>: error:` line naming the file/field/value, no traceback."""
    args = make(tmp_path, corpus_dir, tiny_models("bert"))
    capsys.readouterr()
    try:
        code = importlib.import_module(f"feedback_ner.{cmd}").main(args)
    except SystemExit as e:  # argparse's own errors exit
        code = e.code
    done = types.SimpleNamespace(returncode=code, stderr=capsys.readouterr().err)
    _check(done, cmd, needles, tmp_path)


SUBPROCESS_CASES = ["unknown-field", "max-length-fraction", "model-no-tokenizer", "prepare-missing-data",
                    "demo-unknown-arch"]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_one_line_error_as_a_process(case_id, tmp_path, corpus_dir, tiny_models):
    """Issue 12: the same through ``python -m feedback_ner.<cmd>``: exit code 2, one line, no traceback."""
    _, cmd, make, needles = next(c for c in CASES if c[0] == case_id)
    done = run_cli(f"feedback_ner.{cmd}", *make(tmp_path, corpus_dir, tiny_models("bert")), timeout=300)
    _check(done, cmd, needles, tmp_path)


def test_errors_come_before_any_run_folder_is_written(tmp_path, corpus_dir, tiny_models):
    """Issue 12: a config mistake found before the work leaves no run folder behind."""
    values = _good(tmp_path, corpus_dir, tiny_models("bert"), folds=[7])
    done = run_cli("feedback_ner.train", "--config", str(_yaml(tmp_path, yaml.safe_dump(values))), timeout=300)
    assert_one_line_error(done, "train", "fold 7")
    assert not (tmp_path / "run").exists()
