"""The Python ``predict`` a Kaggle notebook calls: every way of giving texts predicts the same, relocated ensembles
keep each weight with its checkpoint, and bad arguments are one clear error before any model loads.

Found by probing from outside: a folder of CRLF essays predicted differently from the same essays as a dict (only
the dict's line ends were normalised); ensemble folders relocated in another order silently took each other's
weights; a lone surrogate, a NaN id, ``batch_size="8"`` or ``weights="11"`` got deep or no errors.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feedback_ner.artifacts import EnsembleSpec, save_ensemble
from feedback_ner.errors import FeedbackError, InvalidInputError
from feedback_ner.inference import predict
from feedback_ner.span_features import _text_structure


@pytest.fixture(scope="module")
def crlf_texts(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> tuple[Path, dict[str, str]]:
    """Six test essays with ``\\r\\n``, lone ``\\r`` and ``\\n`` line ends: a folder, and a dict of the raw texts."""
    folder = tmp_path_factory.mktemp("crlf")
    raw: dict[str, str] = {}
    for i, path in enumerate(sorted((corpus_dir / "test").glob("*.txt"))[:6]):
        text = path.read_bytes().decode("utf-8")
        text = text.replace("\n", ["\r\n", "\r", "\n"][i % 3])
        (folder / path.name).write_bytes(text.encode("utf-8"))
        raw[path.stem] = text
    return folder, raw


def _sorted(sub: pd.DataFrame) -> pd.DataFrame:
    return sub.sort_values(list(sub.columns)).reset_index(drop=True)


def test_a_folder_and_a_dict_of_the_same_essays_predict_the_same(bert_run: Path, crlf_texts, tmp_path: Path):
    folder, raw = crlf_texts
    a = predict(bert_run, folder, probs_out=tmp_path / "a.npz")
    b = predict(bert_run, raw, probs_out=tmp_path / "b.npz")
    c = predict(bert_run, sorted(folder.glob("*.txt")))  # a list of files, as load_texts takes
    pd.testing.assert_frame_equal(_sorted(a), _sorted(b))
    pd.testing.assert_frame_equal(_sorted(a), _sorted(c))
    with np.load(tmp_path / "a.npz") as x, np.load(tmp_path / "b.npz") as y:
        np.testing.assert_array_equal(x["probs"], y["probs"])


def test_paragraphs_start_at_every_kind_of_line_end():
    """The rescorer's paragraph features: a lone ``\\r`` (old Mac files) ends a line as ``\\n`` and ``\\r\\n`` do."""
    base = "First line here.\nSecond one\n\nThird."
    expected = _text_structure(base)
    for line_end in ("\r\n", "\r"):
        for got, want in zip(_text_structure(base.replace("\n", line_end)), expected, strict=True):
            np.testing.assert_array_equal(got, want)
    assert expected[0].tolist() == [True, False, False, True, False, True]


def test_relocated_ensemble_folders_keep_their_weights(bert_run: Path, corpus_dir: Path, tmp_path: Path):
    """Fold 0 weighs 1, fold 1 weighs 0: copies given in the other order must still decode as fold 0 alone."""
    folds = [bert_run / "fold_0" / "model", bert_run / "fold_1" / "model"]
    spec_path = save_ensemble(tmp_path / "ens.json", EnsembleSpec(folds, [1.0, 0.0]))
    copies = [Path(shutil.copytree(f, tmp_path / "kaggle" / f"copy_{f.parent.name}")) for f in folds]
    texts = corpus_dir / "test"
    expected = predict(None, texts, ensemble=spec_path)
    alone = predict(folds[0], texts)
    assert not expected.empty
    pd.testing.assert_frame_equal(_sorted(expected), _sorted(alone))
    swapped = predict(copies[::-1], texts, ensemble=spec_path)
    pd.testing.assert_frame_equal(_sorted(swapped), _sorted(expected))
    with pytest.raises(InvalidInputError, match="not one of the checkpoints"):
        predict([copies[0], _other_checkpoint(folds[1], tmp_path)], texts, ensemble=spec_path)


def test_an_ensemble_refuses_a_checkpoint_retrained_since(bert_run: Path, corpus_dir: Path, tmp_path: Path):
    """The ensemble file records each checkpoint's run fingerprint and fold; a run retrained in place since
    (``--overwrite_output_dir``, other settings: a new fingerprint) is refused by name, on the ensemble's own
    folders as on relocated copies, instead of decoding with weights fitted to the old checkpoints."""
    import json

    run = Path(shutil.copytree(bert_run, tmp_path / "run"))
    folds = [run / "fold_0" / "model", run / "fold_1" / "model"]
    spec_path = save_ensemble(tmp_path / "ens.json", EnsembleSpec(folds, [0.7, 0.3]))
    assert not predict(None, corpus_dir / "test", ensemble=spec_path).empty
    data = json.loads((folds[1] / "feedback_ner.json").read_text())
    data["extra"]["fingerprint"] = "1111111111111111"  # what a retrain with other settings writes there
    (folds[1] / "feedback_ner.json").write_text(json.dumps(data))
    with pytest.raises(InvalidInputError, match=r"fold_1/model: not the checkpoint .*1111111111111111.*ensemble"):
        predict(None, corpus_dir / "test", ensemble=spec_path)


def test_an_ensemble_refuses_a_run_retrained_in_place_with_the_same_settings(corpus_dir: Path, tmp_path: Path,
                                                                             tiny_models):
    """Found probing from outside: a run retrained in place with unchanged settings (on edited labels, or just
    again) kept its fingerprint, so the ensemble file decoded the new checkpoints with weights and thresholds fitted
    to the old ones' probabilities, without a word. Each training of a fold now has its own identity."""
    from conftest import small_config

    from feedback_ner.config import parse_config
    from feedback_ner.kfold import run

    config = small_config(corpus_dir, tiny_models("bert"), tmp_path / "run", folds=[0], tune_trials=0,
                          cache_dir=str(tmp_path / "cache"))
    run(*parse_config(None, overrides=config))
    model = tmp_path / "run" / "fold_0" / "model"
    spec_path = save_ensemble(tmp_path / "ens.json", EnsembleSpec([model], [1.0]))
    predict(None, corpus_dir / "test", ensemble=spec_path)
    run(*parse_config(None, overrides={**config, "overwrite_output_dir": True}))  # the same settings, again
    with pytest.raises(InvalidInputError, match=r"fold_0/model: not the checkpoint .* retrained since\?"):
        predict(None, corpus_dir / "test", ensemble=spec_path)


def _other_checkpoint(folder: Path, tmp_path: Path) -> Path:
    """A copy of a checkpoint that says it belongs to another run."""
    import json

    other = Path(shutil.copytree(folder, tmp_path / "other"))
    data = json.loads((other / "feedback_ner.json").read_text())
    data["extra"]["fingerprint"] = "0000000000000000"
    (other / "feedback_ner.json").write_text(json.dumps(data))
    return other


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"texts": {"a": "hello \ud800 world"}}, r"essay 'a': character 6 .* not valid Unicode"),
    ({"texts": pd.DataFrame({"id": ["a", None], "text": ["one", "two"]})}, "row 1 has no id"),
    ({"texts": pd.DataFrame({"id": ["a"], "text": [pd.NA]})}, "essay 'a' has no text"),
    ({"batch_size": "8"}, r"batch_size='8'"),
    ({"batch_size": 2.5}, r"batch_size=2.5"),
    ({"weights": "11"}, r"weights '11': give a list of numbers"),
    ({"texts": "An essay's text.\nIts second paragraph."}, r"a string is read as a folder or file path"),
    ({"texts": "word " * 400}, r"looks like an essay's text"),
    ({"texts": pd.DataFrame({"id": [7.0, 8.0], "text": ["one", "two"]})}, r"id column holds numbers \(float64"),
    ({"postprocess": [1, 2]}, r"postprocess \[1, 2\]: give a JSON file's path, a dict or a PostprocessConfig"),
    # found by probing (2026-12-01): these got a TypeError/AttributeError, or nothing ("no" turned bf16 on)
    ({"models": 5}, r"models: 5 is a int; give checkpoint folders"),
    ({"cpu_bf16": "no"}, r"cpu_bf16='no': give True or False"),
    ({"timings": []}, r"timings: a list; give a dict"),
])
def test_bad_arguments_are_one_clear_error(bert_run: Path, corpus_dir: Path, kwargs, match):
    args = {"models": bert_run, "texts": corpus_dir / "test", **kwargs}
    with pytest.raises(InvalidInputError, match=match):
        predict(**args)


def test_models_as_an_array_of_paths(bert_run: Path, corpus_dir: Path):
    """Review: `if models` on a numpy array or a Series of paths raised "truth value ... ambiguous"."""
    folds = sorted(str(p) for p in bert_run.glob("fold_*/model"))
    expected = predict(folds, corpus_dir / "test")
    for given in (np.array(folds), pd.Series(folds)):
        pd.testing.assert_frame_equal(predict(given, corpus_dir / "test"), expected)


def test_what_is_not_an_essay_or_a_second_copy_is_refused(bert_run: Path, corpus_dir: Path):
    """Found by probing: a CSV given as texts was predicted as one essay; a list holding a folder was called "no
    such essay file"; a run folder and one of its folds weighed that fold double, silently."""
    cases = [
        ({"texts": corpus_dir / "train.csv"}, r"train.csv: not an essay file \(<id>.txt\)"),
        ({"texts": [corpus_dir / "test"]}, r"test: a folder in a list of essay files"),
        ({"models": [bert_run, bert_run / "fold_0" / "model"]}, r"fold_0/model is given twice"),
    ]
    for kwargs, match in cases:
        with pytest.raises(FeedbackError, match=match):
            predict(**{"models": bert_run, "texts": corpus_dir / "test", **kwargs})


def test_an_ensemble_of_two_runs_with_the_same_settings_keeps_both(bert_run: Path, tmp_path: Path):
    """Copies of one run share its fingerprint: identities cannot tell them apart, so the file records none and
    folders are taken by position (matching by identity had given one folder twice)."""
    import json

    from feedback_ner.artifacts import plan_prediction

    other = Path(shutil.copytree(bert_run, tmp_path / "again"))
    folders = [bert_run / "fold_0" / "model", other / "fold_0" / "model"]
    spec_path = save_ensemble(tmp_path / "ens.json", EnsembleSpec(folders, [0.9, 0.1]))
    assert "checkpoints" not in json.loads(spec_path.read_text())
    def resolved(paths: list[Path]) -> list[Path]:
        return [p.resolve() for p in paths]

    assert resolved(plan_prediction(None, ensemble=spec_path).folders) == resolved(folders)
    assert resolved(plan_prediction(folders, ensemble=spec_path).folders) == resolved(folders)


def test_a_missing_relocated_folder_is_named(bert_run: Path, tmp_path: Path):
    folds = [bert_run / "fold_0" / "model", bert_run / "fold_1" / "model"]
    spec_path = save_ensemble(tmp_path / "ens.json", EnsembleSpec(folds, [0.5, 0.5]))
    copy = Path(shutil.copytree(folds[0], tmp_path / "copy_0"))
    with pytest.raises(FeedbackError, match="copy_1: no such checkpoint folder"):
        predict([copy, tmp_path / "copy_1"], {"a": "one essay"}, ensemble=spec_path)


def test_an_ensemble_moved_apart_from_its_runs_says_how_to_relocate(bert_run: Path, tmp_path: Path):
    """Found probing from outside: an ensemble file copied away from its runs said "no such checkpoint folder; pass
    a fold's model folder", not that the file names it relative to itself and that the copied folders relocate it."""
    folds = [bert_run / "fold_0" / "model", bert_run / "fold_1" / "model"]
    spec_path = save_ensemble(tmp_path / "here" / "ens.json", EnsembleSpec(folds, [0.5, 0.5]))
    moved = Path(shutil.copytree(spec_path.parent, tmp_path / "elsewhere" / "deep" / "ens"))
    with pytest.raises(FeedbackError, match=r"no such checkpoint folder, which .*ens.json names \(relative to the "
                                            r"file\); .*predict --model DIR... --ensemble FILE"):
        predict(None, {"a": "one essay"}, ensemble=moved / "ens.json")
    relocated = predict(folds, {"a": "an essay of a few words"}, ensemble=moved / "ens.json")  # as it says
    assert list(relocated.columns) == ["id", "class", "predictionstring"]


def test_a_list_of_essay_texts_is_not_read_as_file_names(bert_run: Path):
    with pytest.raises(InvalidInputError, match=r"look like essay texts; pass \{id: text\}"):
        predict(bert_run, ["First essay.\nIt has two lines.", "x" * 5000])


def test_essays_without_words_are_kept_and_counted(bert_run: Path, corpus_dir: Path, caplog):
    """An empty or whitespace-only essay (often a copying mistake) predicts nothing and is said, with a count."""
    import logging

    text = next(iter(sorted((corpus_dir / "test").glob("*.txt")))).read_text(encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="feedback_ner"):
        sub = predict(bert_run, {"full": text, "empty": "", "blank": " \n\t "})
    assert set(sub["id"]) <= {"full"}
    assert "2 of the 3 essays have no words" in caplog.text


def test_checkpoints_of_runs_tuned_apart_say_whose_tuning_decodes(bert_run: Path, corpus_dir: Path, tmp_path: Path,
                                                                   caplog):
    """Several runs' checkpoints and no ensemble file: the first run's tuned postprocess.json decodes them all; the
    second run's own (different) file was passed over without a word."""
    import logging

    from feedback_ner.labels import CLASSES
    from feedback_ner.postprocess import PostprocessConfig

    a = Path(shutil.copytree(bert_run, tmp_path / "a"))
    b = Path(shutil.copytree(bert_run, tmp_path / "b"))
    PostprocessConfig.zeros().save(a / "postprocess.json")
    PostprocessConfig(min_words={c: 3 for c in CLASSES}).save(b / "postprocess.json")
    texts = {p.stem: p.read_text(encoding="utf-8") for p in sorted((corpus_dir / "test").glob("*.txt"))[:2]}
    with caplog.at_level(logging.WARNING, logger="feedback_ner"):
        predict([a / "fold_0" / "model", b / "fold_0" / "model"], texts)
    assert "checkpoints of 2 runs decode with the run's tuned" in caplog.text
    assert str(b / "postprocess.json") in caplog.text
    caplog.clear()
    PostprocessConfig.zeros().save(b / "postprocess.json")  # the same tuning: nothing to say
    with caplog.at_level(logging.WARNING, logger="feedback_ner"):
        predict([a / "fold_0" / "model", b / "fold_0" / "model"], texts)
    assert "checkpoints of 2 runs" not in caplog.text
    caplog.clear()
    (a / "postprocess.json").unlink()  # the first run decodes with its checkpoint's; the second's tuned file differs
    with caplog.at_level(logging.WARNING, logger="feedback_ner"):
        predict([a / "fold_0" / "model", b / "fold_0" / "model"], texts)
    assert "checkpoints of 2 runs decode with the checkpoint" in caplog.text
