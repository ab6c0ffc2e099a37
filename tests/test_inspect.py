"""Error analysis (issue 15): span kinds consistent with the metric, the HTML page rendered in headless Chromium,
the terminal table and CSV of ``feedback_ner.inspect``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import assert_one_line_error, run_cli

from feedback_ner.analysis import GT_KINDS, NONE, PRED_KINDS, analyse, length_f1, span_length_bin
from feedback_ner.errorpage import page_data, render
from feedback_ner.labels import CLASSES, NUM_LABELS, bio_labels, parse_predictionstring, split_words
from feedback_ner.metric import score
from feedback_ner.postprocess import PostprocessConfig, candidate_spans, filter_spans


def test_kinds_of_a_hand_made_example():
    gt = pd.DataFrame({
        "id": ["a", "a", "a", "b", "b", "b"],
        "discourse_type": ["Claim", "Claim", "Lead", "Evidence", "Claim", "Claim"],
        "predictionstring": ["0 1 2 3", "4 5 6 7", "10 11", "0 1 2 3 4 5", "7 8 9", "7 8 9"],
    })
    pred = pd.DataFrame({
        "id": ["a", "a", "a", "a", "b", "b", "c"],
        "class": ["Claim", "Claim", "Evidence", "Claim", "Claim", "Claim", "Lead"],
        "predictionstring": ["0 1 2", "1 2 3", "10 11", "7 8 9 10 11 12", "0 1 2 3 4", "8 9", "1 2"],
    })
    a = analyse(pred, gt)
    assert a.gt["kind"].tolist() == ["matched", "boundary", "wrong_class", "wrong_class", "matched", "duplicate"]
    assert a.pred["kind"].tolist() == ["correct", "duplicate", "wrong_class", "boundary", "wrong_class", "correct",
                                       "invented"]
    assert a.gt["other_class"].tolist()[2:4] == ["Evidence", "Claim"]
    confusion = a.confusion()
    assert confusion.loc["Lead", "Evidence"] == 1 and confusion.loc[NONE, "Lead"] == 1
    table = a.breakdown()
    metric = score(pred, gt).table
    pd.testing.assert_frame_equal(table[["TP", "FP", "FN"]], metric[["TP", "FP", "FN"]], check_names=False)


def noisy_submission(corpus_dir: Path, sigma: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A decoded submission of noisy word probabilities around the true labels, with the ground truth."""
    gt = pd.read_csv(corpus_dir / "train.csv")
    rng = np.random.default_rng(seed)
    probs = {}
    for essay_id, rows in gt.groupby("id", sort=False):
        words, _, _ = split_words((corpus_dir / "train" / f"{essay_id}.txt").read_text(encoding="utf-8"))
        spans = [(c, parse_predictionstring(p)) for c, p in zip(rows["discourse_type"], rows["predictionstring"])]
        logits = 2.5 * np.eye(NUM_LABELS)[bio_labels(len(words), spans)] + rng.normal(0, sigma, (len(words),
                                                                                                  NUM_LABELS))
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs[essay_id] = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    config = PostprocessConfig(min_words={c: 1 for c in CLASSES}, proba_thresh={c: 0.0 for c in CLASSES})
    pred = filter_spans(candidate_spans(probs), config)
    return pred, gt, probs


@pytest.mark.parametrize("sigma,seed", [(0.6, 0), (0.9, 1), (1.3, 2)])
def test_breakdown_agrees_with_the_metric(corpus_dir, sigma, seed):
    """matched == TP per class; the predicted kinds add up to the predictions; FP and FN as the metric."""
    pred, gt, _ = noisy_submission(corpus_dir, sigma, seed)
    # a few duplicate predictions and predictions of an essay without ground truth, as real submissions have
    correct = pred[(analyse(pred, gt).pred["kind"] == "correct").to_numpy()]
    pred = pd.concat([pred, correct.iloc[:5], pred.iloc[:2].assign(id="no-such-essay")], ignore_index=True)
    a = analyse(pred, gt)
    table = a.breakdown()
    metric = score(pred[["id", "class", "predictionstring"]], gt).table
    assert (table["TP"] == metric["TP"]).all() and (table["gt_matched"] == metric["TP"]).all()
    assert (table["FP"] == metric["FP"]).all() and (table["FN"] == metric["FN"]).all()
    np.testing.assert_allclose(table["F1"], metric["F1"])
    n_pred = pred[pred["class"].isin(table.index)].groupby("class").size().reindex(table.index, fill_value=0)
    assert (table[[f"pred_{k}" for k in PRED_KINDS]].sum(axis=1) == n_pred).all()
    n_gt = gt.groupby("discourse_type").size().reindex(table.index)
    assert (table[[f"gt_{k}" for k in GT_KINDS]].sum(axis=1) == n_gt).all()
    assert set(a.pred["kind"]) <= set(PRED_KINDS) and a.pred["kind"].eq("duplicate").sum() >= 1
    # the confusion table holds every ground truth once, plus the predictions that match nothing
    assert a.confusion().drop(index=NONE).to_numpy().sum() == len(gt)
    assert 0 <= a.per_essay()["F1"].min() <= a.per_essay()["F1"].iloc[-1] <= 1


def test_length_bins(corpus_dir):
    pred, gt, probs = noisy_submission(corpus_dir, 1.3, 0)
    a = analyse(pred, gt)
    by_essay, by_span = length_f1(a, pd.Series({k: len(v) for k, v in probs.items()}))
    assert by_essay["n_essays"].sum() == len(probs) and len(by_essay) == 3
    assert by_span["TP"].sum() == a.breakdown()["TP"].sum()
    assert list(span_length_bin(np.array([1, 5, 6, 10, 11, 81, 500]))) == ["1-5", "1-5", "6-10", "6-10", "11-20",
                                                                          "81+", "81+"]


def test_page_data_escapes_script_tags(corpus_dir):
    pred, gt, probs = noisy_submission(corpus_dir, 1.3, 0)
    a = analyse(pred, gt)
    texts = {k: (corpus_dir / "train" / f"{k}.txt").read_text(encoding="utf-8") for k in probs}
    data = page_data(a, texts, probs, subtitle="ends with </script><b>", max_essays=5)
    assert len(data["essays"]) == 5 and data["essays_left_out"] == len(probs) - 5
    assert len(data["essays"][0]["probs"]) == len(CLASSES)
    html = render(data, "a <title>")
    assert html.count("</script>") == 2 and "a &lt;title&gt;" in html


def _odd_texts(corpus_dir: Path, probs: dict) -> dict[str, str]:
    """The essays' texts with, in the first one, two words made of emoji (beyond U+FFFF: two UTF-16 units each) and
    two words that open an HTML comment and a script element; the word count stays."""
    texts = {k: (corpus_dir / "train" / f"{k}.txt").read_text(encoding="utf-8") for k in probs}
    first = next(iter(texts))
    words = texts[first].split(" ")
    words[2], words[5], words[8], words[11] = "\U0001F600\U0001F389", "<!--", "<script>", "\U0001F9E0"
    texts[first] = " ".join(words)
    return texts


def test_page_word_offsets_are_in_javascript_units(corpus_dir):
    """The page cuts words with JavaScript's ``text.slice`` (UTF-16 code units): after an emoji, Python's code-point
    offsets would cut every later word in the wrong place."""
    pred, gt, probs = noisy_submission(corpus_dir, 1.3, 0)
    texts = _odd_texts(corpus_dir, probs)
    data = page_data(analyse(pred, gt), texts, probs, max_essays=len(probs))
    essay = next(e for e in data["essays"] if "\U0001F600" in e["text"])
    units = essay["text"].encode("utf-16-le")
    shown = [units[2 * a : 2 * b].decode("utf-16-le") for a, b in zip(essay["ws"], essay["we"], strict=True)]
    assert shown == essay["text"].split()
    html = render(data, "t")  # no "<" of the essays' text reaches the HTML: nothing can open or close an element
    assert "<!--" not in html and html.count("<script") == 2


def test_page_with_emoji_and_comment_text_renders_in_headless_chromium(corpus_dir, tmp_path):
    """Essay text with emoji, ``<!--`` and ``<script>`` renders as text in a real browser: the page's own script runs
    (an unescaped ``<!--`` ... ``<script>`` in the data block used to swallow it) and the words are cut right."""
    browser = find_chromium()
    if browser is None:
        pytest.skip("no chromium on PATH: `make browser` installs it (apt-get, as root)")
    pred, gt, probs = noisy_submission(corpus_dir, 1.3, 0)
    texts = _odd_texts(corpus_dir, probs)
    first = next(iter(texts))
    path = tmp_path / "odd.html"
    path.write_text(render(page_data(analyse(pred, gt), texts, probs, max_essays=len(probs)), "odd"),
                    encoding="utf-8")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([*flags, "--dump-dom", f"{path.as_uri()}#id={first}"], capture_output=True, text=True,
                         timeout=120)
    assert 'data-rendered="ok"' in dom.stdout, dom.stderr[-2000:]
    assert re.search(r'<pre id="js-errors"></pre>', dom.stdout)
    essay = re.search(rf'<div class="essay" data-id="{first}">.*?(?=<div class="essay"|<button id="more"|$)',
                      dom.stdout, re.S).group(0)
    words = re.findall(r'<span class="w"[^>]*>([^<]*)<', essay)
    for word in ("\U0001F600\U0001F389", "&lt;!--", "&lt;script&gt;", "\U0001F9E0"):
        assert word in words, (word, words[:16])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, bert_run) -> Path:
    """A copy of the session's trained run (the page and the CSV are written into it)."""
    out = tmp_path_factory.mktemp("inspect") / "run"
    shutil.copytree(bert_run, out)
    return out


@pytest.fixture(scope="module")
def page(run_dir) -> tuple[Path, subprocess.CompletedProcess]:
    done = run_cli("feedback_ner.inspect", str(run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir / "report.html", done


def test_inspect_writes_page_table_and_csv(run_dir, page):
    path, done = page
    cv = pd.read_csv(run_dir / "cv.csv", index_col=0)
    errors = pd.read_csv(run_dir / "errors.csv", index_col=0)
    # the breakdown decodes with the checkpoints' post-processing: the same F1 as the CV table
    assert errors["F1"].mean() == pytest.approx(cv.loc["macro", "overall"])
    assert f"macro F1 {cv.loc['macro', 'overall']:.4f}" in done.stdout
    assert "wrong_class" in done.stdout and "invented" in done.stdout and "missed" in done.stdout
    html = path.read_text()
    assert "https://" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_page_in_headless_chromium(page, tmp_path):
    """Issue 15: the page renders in a real browser, with the CV table, the error counts, a highlighted essay and no
    JavaScript error."""
    browser = find_chromium()
    if browser is None:
        pytest.skip("no chromium on PATH: `make browser` installs it (apt-get, as root)")
    path, _ = page
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,2200",
             "--enable-logging=stderr", "--v=0"]
    shot = tmp_path / "page.png"
    done = subprocess.run([*flags, f"--screenshot={shot}", path.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000, done.stderr[-2000:]
    shutil.copy(shot, path.with_name("report.png"))  # kept beside the page for a person to look at
    dom = subprocess.run([*flags, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120)
    html = dom.stdout
    console_errors = [line for line in dom.stderr.splitlines() if "CONSOLE" in line and ("Uncaught" in line or
                                                                                         "Error" in line)]
    assert not console_errors, console_errors
    assert 'data-rendered="ok"' in html, dom.stderr[-2000:]
    assert re.search(r'<pre id="js-errors"></pre>', html), re.search(r'<pre id="js-errors">.*?</pre>', html, re.S)
    assert '<table id="cv-data">' in html and "macro" in html
    assert '<table id="breakdown-data">' in html and "gt_boundary" in html
    assert 'id="confusion-svg"' in html and 'id="len-essay-svg"' in html
    first = re.search(r'<div class="essay" data-id="[^"]+">.*?(?=<div class="essay"|$)', html, re.S).group(0)
    assert 'class="g gold"' in first and 'class="p pred"' in first

    # filters preset from the address: every essay shown has a missed Claim
    dom = subprocess.run([*flags, "--dump-dom", path.as_uri() + "#class=Claim&kind=missed&probs=1"],
                         capture_output=True, text=True, timeout=120)
    essays = re.findall(r'<div class="essay" data-id="[^"]+">.*?(?=<div class="essay"|<button id="more")', dom.stdout,
                        re.S)
    assert essays and all("gold: Claim (missed)" in e for e in essays)
    # and the first one's word-probability chart: one line per class
    chart = re.search(r'<div class="probs" data-words="(\d+)">.*?</svg>', essays[0], re.S)
    assert chart and chart.group(0).count("<path") == 7

    # the same checks catch a JavaScript error: a page whose script fails shows it in both places
    broken = tmp_path / "broken.html"
    broken.write_text(path.read_text().replace('document.body.setAttribute("data-rendered"',
                                                        'noSuchFunction(); document.body.setAttribute("data-rendered"'))
    dom = subprocess.run([*flags, "--dump-dom", broken.as_uri()], capture_output=True, text=True, timeout=120)
    assert "noSuchFunction is not defined" in re.search(r'<pre id="js-errors">(.*?)</pre>', dom.stdout, re.S).group(1)
    assert any("CONSOLE" in line and "Uncaught" in line for line in dom.stderr.splitlines())
    assert 'data-rendered="ok"' not in dom.stdout


def test_inspect_on_a_submission_csv(run_dir, corpus_dir, tmp_path):
    sub = tmp_path / "oof_submission.csv"
    from feedback_ner.errorpage import load_predictions

    preds = load_predictions(run_dir)
    preds.pred[["id", "class", "predictionstring"]].to_csv(sub, index=False)
    done = run_cli("feedback_ner.inspect", str(sub), "--data", str(corpus_dir), "--out", str(tmp_path / "p.html"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "p.html").is_file() and (tmp_path / "errors.csv").is_file()


def test_inspect_on_a_csv_counts_the_essays_it_has_no_row_for(run_dir, corpus_dir, tmp_path):
    """Found by probing: an essay whose spans were all filtered out has no row in a submission CSV, and inspect
    left it out (0.0600 printed where `score` gave 0.0551). It now scores the CSV as `score` does: every essay of
    train.csv, the missing ones' elements missed, with the warning; --only-predicted-essays as in `score`."""
    from feedback_ner.errorpage import load_predictions
    from feedback_ner.metric import score

    pred = load_predictions(run_dir).pred[["id", "class", "predictionstring"]]
    dropped = sorted(set(pred["id"]))[:3]
    pred = pred[~pred["id"].isin(dropped)]
    sub = tmp_path / "oof_submission.csv"
    pred.to_csv(sub, index=False)
    gt = pd.read_csv(corpus_dir / "train.csv")
    for flag, truth in (([], gt), (["--only-predicted-essays"], gt[gt["id"].isin(set(pred["id"]))])):
        done = run_cli("feedback_ner.inspect", str(sub), "--data", str(corpus_dir), "--out",
                       str(tmp_path / "p.html"), *flag)
        assert done.returncode == 0, done.stderr[-3000:]
        printed = float(re.search(r"macro F1 ([0-9.]+)", done.stdout).group(1))
        assert printed == pytest.approx(score(pred, truth).f1, abs=1e-4)
        assert ("have no prediction" in done.stderr) == (not flag)


def test_inspect_never_writes_over_the_users_files(run_dir, corpus_dir, tmp_path):
    """Found by probing: `inspect RUN --csv train.csv` replaced the competition's labels with the breakdown table and
    `--out RUN/oof.npz` the run's probabilities with the page. Both are refused, and the files stay as they were."""
    labels = tmp_path / "train.csv"
    labels.write_bytes((corpus_dir / "train.csv").read_bytes())
    probs = (run_dir / "oof.npz").read_bytes()
    for flag, target in (("--csv", labels), ("--out", run_dir / "oof.npz")):
        done = run_cli("feedback_ner.inspect", str(run_dir), "--data", str(corpus_dir), flag, str(target))
        assert_one_line_error(done, "inspect", flag, target.name, "would be lost")
    assert labels.read_bytes() == (corpus_dir / "train.csv").read_bytes()
    assert (run_dir / "oof.npz").read_bytes() == probs


def test_inspect_on_a_fold_folder_prints_the_folds_f1(run_dir, tmp_path):
    """Found by probing: `inspect RUN/fold_0` decoded with the baseline defaults (no fold_*/model inside a fold) and
    printed 0.0000 where the fold's eval_f1 was 0.0338, without naming the post-processing. A fold folder decodes
    with its own checkpoint's, and the terminal names it."""
    fold = run_dir / "fold_0"
    done = run_cli("feedback_ner.inspect", str(fold), "--out", str(tmp_path / "f.html"))
    assert done.returncode == 0, done.stderr[-3000:]
    printed = float(re.search(r"macro F1 ([0-9.]+)", done.stdout).group(1))
    assert printed == pytest.approx(json.loads((fold / "metrics.json").read_text())["eval_f1"], abs=1e-4)
    assert f"post-processing: checkpoint {fold / 'model'}" in done.stdout


def test_inspect_on_a_run_folder_says_what_its_warning_means(run_dir, tmp_path):
    """Found probing from outside: on a run folder, essays whose spans were all filtered out got the submission
    warning "have no prediction ... pass --only-predicted-essays", and that option was silently ignored there."""
    done = run_cli("feedback_ner.inspect", str(run_dir), "--only-predicted-essays", "--out", str(tmp_path / "p.html"))
    assert_one_line_error(done, "inspect", "--only-predicted-essays", "is for a submission CSV")
    done = run_cli("feedback_ner.inspect", str(run_dir), "--out", str(tmp_path / "p.html"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--only-predicted-essays" not in done.stderr


def test_a_run_scored_on_labels_it_was_not_trained_on_is_said(bert_run, corpus_dir, tmp_path):
    """Found probing from outside: after train.csv was edited (or another one given), inspect and tune scored the
    run's probabilities on labels it never saw without a word, and tune wrote a postprocess.json predict then used.
    The run records its train.csv's SHA-1; both say when theirs differs."""
    import pandas as pd

    assert (bert_run / "train_csv.txt").is_file()
    data = Path(shutil.copytree(corpus_dir, tmp_path / "edited", ignore=shutil.ignore_patterns(".cache*")))
    gt = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    gt.loc[gt["discourse_type"] == "Claim", "discourse_type"] = "Counterclaim"
    gt.to_csv(data / "train.csv", index=False)
    run = Path(shutil.copytree(bert_run, tmp_path / "run"))
    said = "is not the train.csv the run"
    same = run_cli("feedback_ner.inspect", str(run), "--data", str(corpus_dir), "--out", str(tmp_path / "a.html"))
    assert same.returncode == 0 and said not in same.stderr, same.stderr[-3000:]
    edited = run_cli("feedback_ner.inspect", str(run), "--data", str(data), "--out", str(tmp_path / "b.html"))
    assert edited.returncode == 0 and said in edited.stderr, edited.stderr[-3000:]
    tuned = run_cli("feedback_ner.tune", "--oof", str(run / "oof.npz"), "--gt", str(data / "train.csv"), "--trials",
                    "2", "--rounds", "1", "--no-cross-fit", timeout=300)
    assert tuned.returncode == 0 and said in tuned.stderr, tuned.stderr[-3000:]
