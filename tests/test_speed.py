"""Issue 16: length-grouped training batches by default, evaluation batches in length order, the length column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer, set_seed

from feedback_ner.config import FeedbackTrainingArguments
from feedback_ner.corpus import load_train
from feedback_ner.trainer import FeedbackTrainer
from feedback_ner.windows import FeedbackCollator, tokenize_windows
from feedback_ner.wordtable import build_word_table

MAX_LENGTH, STRIDE, BATCH = 96, 16, 4


@pytest.fixture(scope="module")
def table(corpus_dir) -> pd.DataFrame:
    return build_word_table(load_train(corpus_dir))


@pytest.fixture(scope="module")
def bert(tiny_models):
    folder = tiny_models("bert")
    return folder, AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def windows(table, bert):
    return tokenize_windows(table.iloc[:40].reset_index(drop=True), bert[1], MAX_LENGTH, STRIDE)


def _trainer(bert, windows, tmp_path, table=None, gt=None, eval_dataset=None, **args) -> FeedbackTrainer:
    folder, tokenizer = bert
    train_args = FeedbackTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=BATCH, per_device_eval_batch_size=BATCH, use_cpu=True,
        report_to="none", seed=3, disable_tqdm=True, eval_strategy="no", save_strategy="no",
        load_best_model_at_end=False, **args,
    )
    set_seed(train_args.seed)
    return FeedbackTrainer(
        model=AutoModelForTokenClassification.from_pretrained(folder), args=train_args, train_dataset=windows,
        eval_dataset=eval_dataset, data_collator=FeedbackCollator(tokenizer), processing_class=tokenizer,
        eval_table=table, eval_gt=gt,
    )


def _epoch(loader) -> list[list[int]]:
    """Window lengths of each batch of one pass over the loader."""
    return [batch["attention_mask"].sum(1).tolist() for batch in loader]


def _pad_share(batches: list[list[int]]) -> float:
    real = sum(sum(b) for b in batches)
    return 1 - real / sum(len(b) * max(b) for b in batches)


def test_windows_store_their_length(windows):
    """The ``length`` column is each window's token count: the sampler reads it instead of the token lists."""
    assert windows["length"] == [len(ids) for ids in windows["input_ids"]]
    assert len(set(windows["length"])) > 3  # the fixture has windows of many lengths


def test_training_batches_are_length_grouped_by_default(bert, windows, tmp_path):
    """Issue 16: by default each batch holds windows of similar length (less padding than random batches), every
    window comes once per epoch, epochs are shuffled differently, and the same seed gives the same batches."""
    assert FeedbackTrainingArguments(output_dir=str(tmp_path)).train_sampling_strategy == "group_by_length"
    trainer = _trainer(bert, windows, tmp_path)
    loader = trainer.get_train_dataloader()
    first, second = _epoch(loader), _epoch(loader)
    assert sorted(sum(first, [])) == sorted(windows["length"]) == sorted(sum(second, []))
    assert first != second
    assert _epoch(_trainer(bert, windows, tmp_path).get_train_dataloader()) == first

    plain = _trainer(bert, windows, tmp_path, train_sampling_strategy="random").get_train_dataloader()
    random_share = np.mean([_pad_share(_epoch(plain)) for _ in range(3)])
    assert _pad_share(first) < 0.5 * random_share, (_pad_share(first), random_share)


def test_evaluation_in_length_order_gives_the_same_word_probabilities(bert, table, corpus_dir, tmp_path):
    """Issue 16: evaluation batches come longest first; the word probabilities and F1 equal those of evaluation in
    dataset order (the accumulator keys every window by its essay)."""
    eval_table = table.iloc[40:60].reset_index(drop=True)
    gt = pd.read_csv(corpus_dir / "train.csv")
    gt = gt[gt["id"].isin(set(eval_table["id"]))].reset_index(drop=True)
    eval_ds = tokenize_windows(eval_table, bert[1], MAX_LENGTH, STRIDE)
    sorted_run = _trainer(bert, eval_ds, tmp_path / "a", eval_table, gt, eval_ds)
    order = [len(b) for b in _epoch(sorted_run.get_eval_dataloader())]
    lengths = [max(b) for b in _epoch(sorted_run.get_eval_dataloader())]
    assert lengths == sorted(lengths, reverse=True) and sum(order) == len(eval_ds)
    metrics = sorted_run.evaluate()

    in_order = _trainer(bert, eval_ds, tmp_path / "b", eval_table, gt, eval_ds.remove_columns("length"),
                        train_sampling_strategy="random")
    first_essays = [int(e) for e in next(iter(in_order.get_eval_dataloader()))["essay_index"]]
    assert first_essays == sorted(first_essays)  # dataset order: the comparison is not vacuous
    reference = in_order.evaluate()
    assert metrics["eval_f1"] == pytest.approx(reference["eval_f1"])
    got, want = sorted_run.word_metric.word_probs, in_order.word_metric.word_probs
    assert got.keys() == want.keys()
    for essay_id in want:
        np.testing.assert_allclose(got[essay_id], want[essay_id], atol=1e-5)


def test_bench_padding_counts_padding_as_the_model_computes_it():
    """The benchmark's pad share: batch width rounded up to the model's multiple; grouped batches cover each window
    once and pad less than random ones."""
    from benchmarks.bench_padding import batch_orders, pad_share

    lengths = np.array([100, 500, 510, 90])
    assert pad_share(lengths, [np.array([0, 1]), np.array([2, 3])], 8) == pytest.approx(1 - 1200 / (2 * 504 + 2 * 512))
    assert pad_share(lengths, [np.array([1, 2]), np.array([0, 3])], 512) == pytest.approx(1 - 1200 / 2048)
    many = np.random.default_rng(0).integers(20, 1024, 400)
    grouped = batch_orders(many, grouped=True, seed=0)
    assert sorted(np.concatenate(grouped).tolist()) == list(range(400))
    assert pad_share(many, grouped, 8) < 0.5 * pad_share(many, batch_orders(many, grouped=False, seed=0), 8)


def test_grouped_batches_come_in_random_length_order():
    """Issue 16: the stock LengthGroupedSampler runs long-to-short within chunks of 50 batches (which cost the demo
    ~0.1 CV F1); ours shuffles the batches: the longest first, then no drift in length."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from feedback_ner.windows import LengthGroupedBatches

    lengths = np.random.default_rng(0).integers(20, 1024, 800)

    def batch_max(order: list[int]) -> np.ndarray:
        return np.array([lengths[order[i : i + 4]].max() for i in range(0, len(order), 4)])

    ours = batch_max(list(LengthGroupedBatches(lengths, 4, generator=torch.Generator().manual_seed(0))))
    stock = batch_max(list(LengthGroupedSampler(4, lengths=lengths.tolist(),
                                                generator=torch.Generator().manual_seed(0))))
    assert ours[0] == lengths.max()
    assert np.mean(np.diff(stock) <= 0) > 0.9  # the drift being fixed
    assert 0.3 < np.mean(np.diff(ours) <= 0) < 0.7
    assert len(LengthGroupedBatches(lengths, 4)) == 800 and list(LengthGroupedBatches([], 4)) == []
