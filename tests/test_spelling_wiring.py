"""Spelling normalisation wired into the package (issue 14): the ``normalize_spelling`` config field, the word table
the model sees, the checkpoint's flag that ``predict`` follows, and the run's log line."""

from __future__ import annotations

import json
import logging
import re
import shutil

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("symspellpy")

from conftest import assert_predict_reproduces_oof, small_config  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from feedback_ner.artifacts import INFERENCE_FILE, InferenceConfig  # noqa: E402
from feedback_ner.config import DataArguments, fingerprint, parse_config, to_flat_dict  # noqa: E402
from feedback_ner.kfold import fold_data, load_data, spelling_table  # noqa: E402
from feedback_ner.labels import word_offsets  # noqa: E402
from feedback_ner.spelling import figures_line, normalize_table, spelling_figures  # noqa: E402
from feedback_ner.windows import tokenize_windows  # noqa: E402
from feedback_ner.wordtable import test_word_table  # noqa: E402

AWKWARD = {
    "glued": "Students,becuase they   dont know.Technolgy is\n\nimportant!! (studnets) \"poeple\" whould.",
    "numbers_urls": "In 2019 , 45% of studnets (about 1,200) used http://example.com/some_page?x=1 and e-mail: "
                    "a.b@c.org 3rd 10:30am $5.00",
    "emoji": "Emoji 😀😀 are fun 👍🏽 ; naïve café résumé Schule Straße 東京 учеников becuase",
    "names": "Generic_Name said: \"PROPERTY_NAME is grate\" -- tabs\there McDonald's iPhone NASA Becuase",
    "line_ends": "First paragraph becuase\r\nsecond\rthird\n\n\r\nfourth studnets\u2028fifth\x85sixth\u3000end",
    "empty": "",
    "spaces": "   \n ",
    "one": "a",
}


def check_table(before: pd.DataFrame, after: pd.DataFrame) -> None:
    """Word counts, ids and labels unchanged; the new offsets are the words of the new text."""
    assert after["id"].tolist() == before["id"].tolist()
    for old, new, starts, ends in zip(before["text"], after["text"], after["word_start"], after["word_end"]):
        assert len(new.split()) == len(old.split())
        assert re.findall(r"\s+", new) == re.findall(r"\s+", old), "whitespace kept"
        s, e = word_offsets(new)
        np.testing.assert_array_equal(starts, s)
        np.testing.assert_array_equal(ends, e)
    if "labels" in before.columns:
        for a, b in zip(before["labels"], after["labels"]):
            np.testing.assert_array_equal(a, b)


def test_every_essay_of_a_generated_corpus_keeps_its_words():
    """Issue 14: normalize_table keeps the word count of each essay of a sample corpus, and changes some words."""
    from feedback_ner.synthetic.corpus import generate_corpus

    _, texts, _ = generate_corpus(60, seed=0, n_test=0)
    table = test_word_table(texts)
    fixed, stats = normalize_table(table)
    check_table(table, fixed)
    assert stats.words == sum(len(t.split()) for t in texts.values())
    assert 0 < stats.changed < 0.05 * stats.words


def test_awkward_texts_keep_their_words():
    """Issue 14: punctuation-glued words, numbers, URLs, emoji, non-English words, mixed line endings."""
    table = test_word_table(AWKWARD)
    fixed, stats = normalize_table(table)
    check_table(table, fixed)
    text = dict(zip(fixed["id"], fixed["text"]))
    assert text["glued"].startswith("Students,because they   dont know.Technology is\n\nimportant!! (students)")
    assert "http://example.com/some_page?x=1" in text["numbers_urls"] and "1,200" in text["numbers_urls"]
    assert "naïve café résumé Schule Straße 東京 учеников because" in text["emoji"]
    assert "Generic_Name" in text["names"] and text["names"].endswith("NASA Because")
    assert "because\r\nsecond\rthird\n\n\r\nfourth students\u2028" in text["line_ends"]
    assert stats.changed >= 8


def test_spelling_table_on_a_labelled_table_keeps_labels_and_folds(corpus_dir):
    _, data_args, _ = parse_config(None, overrides={"data_dir": str(corpus_dir), "cache_dir": str(corpus_dir / ".c"),
                                                    "normalize_spelling": True, "use_cpu": True})
    table, _ = load_data(data_args)
    fixed = spelling_table(table, data_args)
    check_table(table, fixed)
    assert fixed["fold"].tolist() == table["fold"].tolist()
    assert (fixed["text"] != table["text"]).any()
    off = DataArguments(data_dir=str(corpus_dir))
    assert spelling_table(table, off) is table
    assert spelling_table(fixed, data_args) is fixed  # marked: fold_data does not normalise the driver's table again


def test_off_by_default_and_old_checkpoints_are_off(tmp_path):
    """Issue 14: the field defaults to off; a feedback_ner.json written before the field reads as off."""
    assert DataArguments().normalize_spelling is False
    assert InferenceConfig().normalize_spelling is False
    InferenceConfig().save(tmp_path)
    data = json.loads((tmp_path / INFERENCE_FILE).read_text())
    del data["normalize_spelling"]
    (tmp_path / INFERENCE_FILE).write_text(json.dumps(data))
    assert InferenceConfig.load(tmp_path).normalize_spelling is False


def test_flag_is_part_of_the_run_fingerprint(tmp_path):
    """A run folder (and its cached data) is never reused across normalize_spelling on/off."""
    base = {"output_dir": str(tmp_path), "use_cpu": True}
    off = fingerprint(to_flat_dict(*parse_config(None, overrides=base)))
    on = fingerprint(to_flat_dict(*parse_config(None, overrides={**base, "normalize_spelling": True})))
    assert on != off


def test_on_changes_the_input_ids_of_a_misspelt_essay(corpus_dir, tiny_models, tmp_path):
    """Issue 14: with the flag the windows hold the corrected words' tokens, over the same word indices; the cached
    windows of the uncorrected texts are not reused."""
    tok = AutoTokenizer.from_pretrained(tiny_models("bert"))
    table = test_word_table({"e": "Studnets becuase the technolgy is importnat to poeple " * 3})
    on = DataArguments(normalize_spelling=True)
    plain = tokenize_windows(table, tok, 128, 32, cache_dir=tmp_path).to_list()
    fixed = tokenize_windows(spelling_table(table, on), tok, 128, 32, cache_dir=tmp_path).to_list()
    assert plain[0]["input_ids"] != fixed[0]["input_ids"]
    assert {w for w in plain[0]["word_ids"] if w >= 0} == {w for w in fixed[0]["word_ids"] if w >= 0} == set(range(24))

    cfg = small_config(corpus_dir, tiny_models("bert"), tmp_path / "run", max_essays=20)
    windows = {}
    for flag in (False, True):
        _, data_args, _ = parse_config(None, overrides={**cfg, "normalize_spelling": flag})
        data = fold_data(*load_data(data_args), 0, tok, data_args)
        windows[flag] = data.eval
        assert data.eval_table["word_start"].map(len).tolist() == [len(t.split()) for t in data.eval_table["text"]]
    assert windows[False]["input_ids"] != windows[True]["input_ids"]
    covered = {}
    for flag, ds in windows.items():
        words: dict[int, set[int]] = {}
        for essay, ids in zip(ds["essay_index"], ds["word_ids"]):
            words.setdefault(essay, set()).update(w for w in ids if w >= 0)
        covered[flag] = words
    assert covered[False] == covered[True], "every word of every essay has tokens, on or off"


def test_spelling_figures():
    """The run's log line: share of words changed, sub-tokens per word before and after (a pure function)."""
    figures = spelling_figures(["a becuase b", "studnets"], ["a because b", "students"], [5, 3], [3, 1])
    assert figures == {"essays": 2, "words": 4, "share_changed": 0.5, "subtokens_per_word_before": 2.0,
                       "subtokens_per_word_after": 1.0}
    assert figures_line(figures) == ("spelling normalisation: 50.00% of 4 words changed; sub-tokens per word "
                                     "2.000 -> 1.000 (on 2 essays)")
    with pytest.raises(ValueError):
        spelling_figures(["a b"], ["a"], [2], [1])


def test_checkpoint_records_the_flag_and_predict_reproduces_its_oof_f1(tmp_path, corpus_dir, tiny_models, caplog):
    """Issue 14: a fold trained with normalize_spelling records it in feedback_ner.json, logs the figures once, and
    predict on its held-out essays (raw texts) reproduces its out-of-fold probabilities and F1; with the flag
    taken out of the checkpoint, predict gives other probabilities (so it is the flag that predict follows)."""
    from feedback_ner.kfold import run
    from feedback_ner.postprocess import PostprocessConfig
    from feedback_ner.predict import predict
    from feedback_ner.probs import load_word_probs

    keep_all = PostprocessConfig.zeros().save(tmp_path / "keep_all.json")
    cfg = small_config(corpus_dir, tiny_models("bert"), tmp_path / "run", folds=[0], max_essays=20,
                       postprocess=str(keep_all), normalize_spelling=True)
    with caplog.at_level(logging.INFO, logger="feedback_ner.kfold"):
        run(*parse_config(None, overrides=cfg))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("spelling normalisation:")]
    assert len(lines) == 1 and "words changed; sub-tokens per word" in lines[0]
    fold_dir = tmp_path / "run" / "fold_0"
    assert InferenceConfig.load(fold_dir / "model").normalize_spelling is True

    oof, held_out = assert_predict_reproduces_oof(fold_dir, corpus_dir, tmp_path)
    texts = dict(zip(held_out["id"], held_out["text"], strict=True))
    changed = [k for k in oof if normalize_table(test_word_table({k: texts[k]}))[0]["text"].iat[0] != texts[k]]
    assert changed, "the held-out essays hold misspellings"
    plain = tmp_path / "plain_model"
    shutil.copytree(fold_dir / "model", plain)
    data = json.loads((plain / INFERENCE_FILE).read_text())
    data["normalize_spelling"] = False
    (plain / INFERENCE_FILE).write_text(json.dumps(data))
    predict([plain], held_out.set_index("id").loc[changed].reset_index(), probs_out=tmp_path / "q.npz")
    other = load_word_probs(tmp_path / "q.npz")
    assert any(not np.allclose(other[k], oof[k], atol=1e-5) for k in changed)


@pytest.mark.parametrize("value", ["maybe", 2])
def test_bad_value_names_the_field(value, tmp_path):
    from feedback_ner.config import ConfigError

    with pytest.raises(ConfigError, match="normalize_spelling"):
        parse_config(None, overrides={"output_dir": str(tmp_path), "use_cpu": True, "normalize_spelling": value})
