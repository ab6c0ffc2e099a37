"""Model cards (issue 15): README.md in the Hugging Face format — valid YAML header + Markdown naming the F1."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import yaml

from feedback_ner.artifacts import InferenceConfig
from feedback_ner.labels import CLASSES
from feedback_ner.modelcard import read_card, write_fold_card, write_run_card


def fold_metrics(f1: float) -> dict:
    metrics = {"eval_f1": f1, "eval_loss": 0.9, "epoch": 3.0}
    metrics.update({f"eval_f1_{c.replace(' ', '_')}": round(0.1 * i, 4) for i, c in enumerate(CLASSES)})
    return metrics


class State(SimpleNamespace):
    def save_to_json(self, path: str) -> None:
        with open(path, "w") as fh:
            fh.write('{"log_history": []}')


def test_fold_card_is_valid_yaml_and_markdown_naming_the_f1(tmp_path):
    model_dir = tmp_path / "myrun" / "fold_1" / "model"
    model_dir.mkdir(parents=True)
    InferenceConfig(max_length=512, stride=64, extra={"fold": 1, "train_config": {
        "model_name_or_path": "allenai/longformer-base-4096", "learning_rate": 2e-5}}).save(model_dir)
    history = [{"loss": 1.2, "epoch": 1.0, "step": 10}, {"eval_f1": 0.41, "eval_loss": 1.1, "epoch": 1.0, "step": 10},
               {"eval_f1": 0.6123, "eval_loss": 0.9, "epoch": 2.0, "step": 20}]
    path = write_fold_card(model_dir, fold_metrics(0.6123), State(log_history=history))
    assert path == model_dir / "README.md" and (model_dir / "trainer_state.json").is_file()
    header, body = read_card(path)
    assert header["library_name"] == "transformers" and header["pipeline_tag"] == "token-classification"
    assert "feedback-prize" in header["tags"] and header["base_model"] == "allenai/longformer-base-4096"
    result = header["model-index"][0]["results"][0]
    assert header["model-index"][0]["name"] == "myrun-fold1"
    assert result["metrics"][0] == {"type": "f1", "value": 0.6123, "name": "macro overlap-F1 (fold 1, held out)"}
    assert {m["name"] for m in result["metrics"][1:]} == {f"F1 {c} (fold 1, held out)" for c in CLASSES}
    assert "## Fold 1 F1" in body and "| **macro** | **0.6123** |" in body
    assert "| `learning_rate` | `2e-05` |" in body and "| `max_length` | `512` |" in body
    assert "| 2.00 | 20 |  | 0.9000 | 0.6123 |" in body  # the training log
    assert 'pipeline("essay-discourse", model=' in body
    assert body.count("```") % 2 == 0  # code fences closed


def test_run_card_names_the_cv(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "fold_0" / "model").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"model_name_or_path": "/local/model", "max_length": 256}))
    cv = pd.DataFrame({"fold_0": [0.5] * len(CLASSES) + [0.5], "overall": [0.25] * len(CLASSES) + [0.5432]},
                      index=pd.Index([*CLASSES, "macro"], name="class"))
    header, body = read_card(write_run_card(run_dir, cv))
    assert header["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.5432
    assert "base_model" not in header  # a local folder is not a Hub model
    assert "| macro | 0.5000 | 0.5432 |" in body and "fold_0/model/README.md" in body


def test_the_reloaded_best_epochs_evaluation_is_not_a_training_epoch():
    """The evaluation of the reloaded best checkpoint comes after training ends, at the last epoch's number: the
    card showed it as a second row 'epoch 3' with epoch 2's F1, and metrics.json had epoch 3 beside epoch 2's F1."""
    from feedback_ner.modelcard import _history_table, best_epoch, training_evals

    history = [
        {"loss": 1.0, "epoch": 1.0, "step": 4}, {"eval_f1": 0.2, "eval_loss": 0.9, "epoch": 1.0, "step": 4},
        {"eval_f1": 0.5, "eval_loss": 0.7, "epoch": 2.0, "step": 8},
        {"eval_f1": 0.5, "eval_loss": 0.6, "epoch": 3.0, "step": 12},  # a tie: the first is kept
        {"train_runtime": 10.0, "epoch": 3.0, "step": 12},
        {"eval_f1": 0.5, "eval_loss": 0.7, "epoch": 3.0, "step": 12},  # the reloaded best, re-scored
    ]
    assert [h["epoch"] for h in training_evals(history)] == [1.0, 2.0, 3.0]
    assert best_epoch(history, 0.5) == 2.0 and best_epoch(history, 0.5, "eval_f1") == 2.0
    assert best_epoch(history, None) is None
    assert _history_table(history).count("\n") == 1 + 3  # header, rule, three epochs
