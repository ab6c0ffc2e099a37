"""Prediction (library): essays -> word probabilities (one or many checkpoints, weighted) -> submission.

``predict`` runs each checkpoint exactly as training-time evaluation does: the checkpoint's own window settings
(``feedback_ner.json``) through :func:`windows.tokenize_windows`, :class:`windows.FeedbackCollator` and
:func:`modeling.model_inputs`, softmax, :class:`decode.WordProbAccumulator` with the checkpoint's sub-token rule.
So predicting a fold's held-out essays with that fold's checkpoint reproduces its out-of-fold F1. Several
checkpoints (the folds of a run, runs of other architectures or tokenizers) meet at the word level: their word
probabilities are averaged with normalised weights, then decoded once by :func:`postprocess.submission_from_probs`
with the post-processing that :func:`artifacts.choose_postprocess` picks, or by the span rescorer that
:func:`artifacts.choose_decoder` picks (``rescore``, or the ensemble file's).

Everything loads from local folders (offline mode is forced for the call): this is the Kaggle entry point. The
command is ``feedback_ner.predict`` (which re-exports :func:`predict` for notebooks).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

import feedback_ner.modeling  # noqa: F401  (registers our custom heads with the Auto classes before loading)
from feedback_ner.artifacts import InferenceConfig, check_checkpoint, plan_prediction
from feedback_ner.decode import WordProbAccumulator
from feedback_ner.errors import InvalidInputError
from feedback_ner.files import atomic_write
from feedback_ner.labels import NUM_LABELS, O_ID
from feedback_ner.modeling import encoder_config, model_inputs, trim_to, varied_length_attention
from feedback_ner.postprocess import SUBMISSION_COLUMNS, PostprocessConfig, submission_from_probs
from feedback_ner.probs import save_word_probs
from feedback_ner.rescoring import Rescorer
from feedback_ner.texts import load_texts
from feedback_ner.windows import FeedbackCollator, pad_multiple_for, tokenize_windows
from feedback_ner.wordtable import test_word_table

logger = logging.getLogger("feedback_ner.inference")

# "predicts no span at all" says something about a checkpoint only over enough words (not over one short essay)
MIN_WORDS_FOR_SPANLESS_WARNING = 200
TIMING_KEYS = ("load_s", "tokenize_s", "forward_s", "merge_s", "postprocess_s", "total_s")


class CorruptCheckpointError(InvalidInputError):
    """A checkpoint whose model computes non-finite logits (corrupt or bit-flipped weights)."""


@dataclass
class Checkpoint:
    """One loaded checkpoint: its folder, inference settings, tokenizer and model (on its device, in eval mode)."""

    folder: Path
    config: InferenceConfig
    tokenizer: Any
    model: Any


def load_checkpoint(
    folder: str | os.PathLike, device: str | torch.device = "cpu", cpu_bf16: bool = False
) -> Checkpoint:
    """Loads a checkpoint folder from local files only, with a one-line error naming the folder if it is broken.

    ``cpu_bf16``: on a CPU with native bf16 (:func:`cpu_bf16_supported`), the weights are cast to bf16 (faster
    forward; ignored elsewhere, with a warning on a CPU without it).
    """
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    folder = Path(folder)
    config = check_checkpoint(folder)
    with offline():
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except Exception as err:  # noqa: BLE001 (tokenizer loading raises many types; all mean "broken folder")
            raise InvalidInputError(
                f"{folder}: cannot load the tokenizer ({_first_line(err)}); re-copy the model folder"
            ) from err
        try:
            model = AutoModelForTokenClassification.from_pretrained(str(folder), local_files_only=True)
        except Exception as err:  # noqa: BLE001 (safetensors, json, size mismatches: all mean "broken folder")
            raise InvalidInputError(
                f"{folder}: cannot load the model ({_first_line(err)}); re-copy the model folder"
            ) from err
    if model.config.num_labels != NUM_LABELS:
        raise InvalidInputError(
            f"{folder}: the model has {model.config.num_labels} labels, this package predicts {NUM_LABELS}; "
            "it is not a feedback_ner checkpoint"
        )
    model.to(device).eval()
    if cpu_bf16 and torch.device(device).type == "cpu":
        if cpu_bf16_supported():
            model.to(torch.bfloat16)  # cast once: in predict, bf16 autocast on a CPU was no faster than fp32 (issue 16)
        else:
            logger.warning("cpu_bf16: this CPU has no native bf16 (AVX512-BF16 or AMX); predicting in fp32")
    return Checkpoint(folder, config, tokenizer, model)


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:300]


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Hub offline mode for the duration of the block (env vars and huggingface_hub's cached flag), then restored."""
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved = {k: os.environ.get(k) for k in keys}
    try:
        import huggingface_hub.constants as hf_constants
    except ImportError:  # pragma: no cover - transformers always brings it
        hf_constants = None
    saved_flag = getattr(hf_constants, "HF_HUB_OFFLINE", None)
    for k in keys:
        os.environ[k] = "1"
    if hf_constants is not None:
        hf_constants.HF_HUB_OFFLINE = True  # read once at import; the env var alone is too late
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if hf_constants is not None:
            hf_constants.HF_HUB_OFFLINE = saved_flag


def check_batch_size(batch_size: Any) -> None:
    """A batch size must be a positive whole number (not "8", 2.5 or True): one :class:`InvalidInputError`."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InvalidInputError(f"batch_size={batch_size!r}: use a positive whole number of windows per batch")


def read_texts(texts: str | os.PathLike | pd.DataFrame | Mapping[str, str]) -> dict[str, str]:
    """Essays as ``{id: text}`` from a folder of ``<id>.txt``, a DataFrame ``id, text`` or a dict.

    Texts are kept as stored or given, line ends included, as training keeps them; the tokenizer reads every line
    end as ``\\n`` (:func:`texts.normalise_newlines`), so an essay predicts the same whatever its line ends.
    """
    if isinstance(texts, (list, tuple)) and any(isinstance(t, str) and ("\n" in t or len(t) > 1024) for t in texts):
        raise InvalidInputError("texts: a list is read as essay files, and these look like essay texts; pass "
                                "{id: text} or a DataFrame (id, text)")
    if isinstance(texts, str) and ("\n" in texts or len(texts) > 1024):
        raise InvalidInputError("texts: a string is read as a folder or file path, and this looks like an essay's "
                                "text; pass {id: text} or a DataFrame (id, text)")
    if isinstance(texts, (str, os.PathLike)) or (
            isinstance(texts, (list, tuple)) and all(isinstance(t, (str, os.PathLike)) for t in texts)):
        # a folder, a file or a list of files; a missing or empty folder is a one-line DataError
        return load_texts(texts)
    if isinstance(texts, pd.DataFrame):
        missing = [c for c in ("id", "text") if c not in texts.columns]
        if missing:
            raise InvalidInputError(f"texts DataFrame: missing column(s) {missing}; it needs columns id, text")
        rows = np.flatnonzero(texts["id"].isna().to_numpy())
        if len(rows):
            raise InvalidInputError(f"texts DataFrame: row {rows[0]} has no id ({len(rows)} rows); give every essay "
                                    "its id")
        if pd.api.types.is_float_dtype(texts["id"]):  # ids read as numbers: 1.0, and 007 became 7.0
            raise InvalidInputError(f"texts DataFrame: its id column holds numbers ({texts['id'].dtype}, e.g. "
                                    f"{texts['id'].iat[0]!r}); read the ids as text, e.g. pd.read_csv(..., "
                                    "dtype={'id': str})")
        pairs = list(zip(texts["id"].astype(str), texts["text"], strict=True))
    elif isinstance(texts, Mapping):
        pairs = [(str(k), v) for k, v in texts.items()]
    else:
        raise InvalidInputError(f"texts must be a folder, files, a DataFrame (id, text) or a dict; got "
                                f"{type(texts).__name__}")
    out: dict[str, str] = {}
    for essay_id, text in pairs:
        if essay_id in out:
            raise InvalidInputError(f"texts: essay id {essay_id!r} given twice; pass each essay once")
        if not isinstance(text, str):
            what = "no text (missing)" if text is None or text is pd.NA or text != text else type(text).__name__
            raise InvalidInputError(f"texts: essay {essay_id!r} has {what}, not a str; give its text")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:  # e.g. a lone surrogate from badly decoded JSON
            raise InvalidInputError(f"texts: essay {essay_id!r}: character {err.start} ({text[err.start]!r}) is not "
                                    "valid Unicode text; decode the essay properly") from None
        out[essay_id] = text
    return out


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device to run on (default: :func:`default_device`); a CUDA device without CUDA is refused."""
    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise InvalidInputError(f"device {device!r}: not a torch device ({_first_line(err)}); use cpu, cuda") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInputError(
                f"device {device!r}: CUDA is not available here (torch {torch.__version__}, no GPU found); "
                "use cpu or leave the device out"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InvalidInputError(
                f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s); use cuda:0"
            )
    return dev


def cpu_bf16_supported() -> bool:
    """Whether this CPU computes bf16 natively (torch reports AVX512-BF16 or AMX tiles); elsewhere bf16 is emulated
    and slower than fp32."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (fp16 where bf16 is unsupported); nothing elsewhere (CPU runs in the model's dtype)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _window_key(ckpt: Checkpoint) -> tuple:
    """Checkpoints with equal keys make identical windows (the folds of one run): tokenise once for all of them."""
    cfg = ckpt.config
    backend = ckpt.tokenizer.backend_tokenizer.to_str()
    return (backend, type(ckpt.tokenizer).__name__, cfg.max_length, cfg.stride, cfg.keep_newlines,
            cfg.label_all_subtokens, cfg.normalize_spelling)


class WindowArrays:
    """A windows dataset as flat arrays, for fast batching in length order."""

    def __init__(self, ds: Any) -> None:
        table = ds.data.table
        self.columns = [c for c in ("input_ids", "attention_mask", "labels", "word_ids") if c in table.column_names]
        self.flat: dict[str, np.ndarray] = {}
        offsets = None
        for name in self.columns:
            arr = table.column(name).combine_chunks()
            self.flat[name] = arr.values.to_numpy(zero_copy_only=False)
            offsets = arr.offsets.to_numpy()
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.essay_index = table.column("essay_index").to_numpy().astype(np.int64)
        self.lengths = np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.essay_index)

    def features(self, rows: np.ndarray) -> list[dict[str, Any]]:
        out = []
        for r in rows.tolist():
            lo, hi = self.offsets[r], self.offsets[r + 1]
            f = {name: self.flat[name][lo:hi] for name in self.columns}
            f["essay_index"] = self.essay_index[r]
            out.append(f)
        return out


def predict_word_probs(
    ckpt: Checkpoint,
    table: pd.DataFrame,
    batch_size: int = 8,
    windows: WindowArrays | None = None,
    timings: dict[str, float] | None = None,
    desc: str | None = None,
) -> dict[str, np.ndarray]:
    """Word probabilities ``{id: [n_words, 15]}`` of the word table's essays by one checkpoint.

    The same steps as training-time evaluation; batches are formed from windows sorted by length (longest first,
    so that an out-of-memory error comes at once), which changes only how much padding each batch carries.
    """
    timings = timings if timings is not None else {}
    if windows is None:
        t0 = time.perf_counter()
        windows = _make_windows(ckpt, table)
        _add(timings, "tokenize_s", time.perf_counter() - t0)
    model, device = ckpt.model, next(ckpt.model.parameters()).device
    collator = FeedbackCollator(ckpt.tokenizer, pad_to_multiple_of=pad_multiple_for(encoder_config(model.config)))
    n_words = [len(s) for s in table["word_start"]]
    acc = WordProbAccumulator(n_words, subtoken=ckpt.config.subtoken_rule)
    order = np.argsort(-windows.lengths, kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    forward_s = merge_s = 0.0
    with torch.inference_mode(), autocast_for(device), varied_length_attention(device):
        for rows in tqdm(batches, desc=desc or f"predict {ckpt.folder}", unit="batch", leave=False,
                         disable=None if len(batches) > 1 else True):
            t0 = time.perf_counter()
            batch = collator(windows.features(rows))
            word_ids = batch.pop("word_ids").numpy()
            essay_index = batch.pop("essay_index").numpy()
            length = batch["input_ids"].shape[1]
            inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            t1 = time.perf_counter()
            logits = model(**model_inputs(inputs, model.config, collator.pad_id)).logits
            logits = trim_to(logits, length).float()
            if not torch.isfinite(logits).all():
                raise CorruptCheckpointError(
                    f"{ckpt.folder}: the model computes non-finite logits (NaN or inf); its weights are corrupt, "
                    "re-copy the model folder"
                )
            probs = logits.softmax(-1).cpu().numpy()  # .cpu() waits for the GPU
            t2 = time.perf_counter()
            acc.add(essay_index, word_ids, probs)
            t3 = time.perf_counter()
            forward_s += t2 - t1
            merge_s += (t1 - t0) + (t3 - t2)
    t0 = time.perf_counter()
    result = acc.result(table["id"].tolist())
    merge_s += time.perf_counter() - t0
    _add(timings, "forward_s", forward_s)
    _add(timings, "merge_s", merge_s)
    return result


def _make_windows(ckpt: Checkpoint, table: pd.DataFrame) -> WindowArrays:
    cfg = ckpt.config
    if cfg.normalize_spelling:  # as in training (kfold.fold_data): the words' indices and count are unchanged
        from feedback_ner.spelling import normalize_table

        table = normalize_table(table)[0]
    ds = tokenize_windows(
        table, ckpt.tokenizer, cfg.max_length, cfg.stride,
        label_all_subtokens=cfg.label_all_subtokens, keep_newlines=cfg.keep_newlines,
    )
    return WindowArrays(ds)


def _add(timings: dict[str, float], key: str, seconds: float) -> None:
    timings[key] = timings.get(key, 0.0) + seconds


def predict(
    models: Sequence[str | os.PathLike] | str | os.PathLike | None,
    texts: str | os.PathLike | pd.DataFrame | Mapping[str, str],
    out: str | os.PathLike | None = None,
    weights: Sequence[float] | None = None,
    postprocess: str | os.PathLike | Mapping | PostprocessConfig | None = None,
    ensemble: str | os.PathLike | Mapping | None = None,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    probs_out: str | os.PathLike | None = None,
    timings: dict[str, float] | None = None,
    rescore: str | os.PathLike | None = None,
    cpu_bf16: bool = False,
) -> pd.DataFrame:
    """Submission ``id, class, predictionstring`` for ``texts`` by the (weighted) ensemble of checkpoint folders.

    ``models``: checkpoint folders, glob patterns or run folders; with ``ensemble`` (a JSON written by
    ``feedback_ner.ensemble``) they may be left out, or given to relocate the file's folders (same count, same order).
    ``weights``: one per folder (normalised; default equal, or the ensemble file's). Post-processing by
    :func:`artifacts.choose_postprocess`: ``postprocess`` (JSON path, dict or config), else the ensemble file's,
    else the run's tuned ``postprocess.json`` (run of the first checkpoint), else the first checkpoint's, else the
    defaults; one log line says which. Writes ``out`` (CSV) and ``probs_out`` (the averaged word probabilities,
    ``probs.save_word_probs``) atomically when given; both are checked before any model runs. ``timings``, if a
    dict, receives seconds per stage (``TIMING_KEYS``; ``forward_s`` is the model forward incl. softmax and the copy
    to the CPU; ``postprocess_s`` includes writing the files). ``rescore``: a rescorer folder (written by
    ``feedback_ner.rescore``) that decodes the word probabilities instead of the threshold post-processing; without
    it the ensemble file's rescorer does, unless ``postprocess`` is given (:func:`artifacts.choose_decoder`).
    ``cpu_bf16``: on a CPU with native bf16 (AVX512-BF16 or AMX), cast the weights to bf16 (a faster forward; word
    probabilities differ from fp32 by ~1e-2, so a fold's out-of-fold F1 is reproduced only approximately); off by
    default, ignored on CUDA (which always uses autocast).
    """
    with offline():  # local files only, for the whole call
        return _predict(models, texts, out, weights, postprocess, ensemble, batch_size, device, probs_out,
                        timings, rescore, cpu_bf16)


def _predict(
    models: Sequence[str | os.PathLike] | str | os.PathLike | None,
    texts: str | os.PathLike | pd.DataFrame | Mapping[str, str],
    out: str | os.PathLike | None,
    weights: Sequence[float] | None,
    postprocess: str | os.PathLike | Mapping | PostprocessConfig | None,
    ensemble: str | os.PathLike | Mapping | None,
    batch_size: int,
    device: str | torch.device | None,
    probs_out: str | os.PathLike | None,
    timings: dict[str, float] | None,
    rescore: str | os.PathLike | None = None,
    cpu_bf16: bool = False,
) -> pd.DataFrame:
    t_start = time.perf_counter()
    timings = timings if timings is not None else {}
    check_batch_size(batch_size)
    if not isinstance(cpu_bf16, (bool, np.bool_)):  # "no" would be true
        raise InvalidInputError(f"cpu_bf16={cpu_bf16!r}: give True or False")
    if not isinstance(timings, dict):
        raise InvalidInputError(f"timings: a {type(timings).__name__}; give a dict (it receives seconds per stage)")
    # all checks before any work, the rescorer's folder included
    plan = plan_prediction(models, weights, postprocess, ensemble, out, probs_out, rescore)
    folders, w, chosen, out, probs_out = plan.folders, plan.weights, plan.postprocess, plan.out, plan.probs_out
    rescorer: Rescorer | None = plan.rescorer
    dev = resolve_device(device)
    logger.info("%s", plan.decoder.describe())

    essays = read_texts(texts)
    if not essays:
        raise InvalidInputError("texts: no essays given; pass a folder of <id>.txt files, a DataFrame or a dict")
    table = test_word_table(essays)
    ids = table["id"].tolist()
    n_words = np.array([len(s) for s in table["word_start"]], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_words)])
    total = np.zeros((int(offsets[-1]), NUM_LABELS), dtype=np.float32)
    logger.info("predicting %d essays (%d words) with %d checkpoint(s) on %s", len(ids), offsets[-1], len(folders), dev)
    empty = [k for k, n in zip(ids, n_words.tolist()) if n == 0]
    if empty:  # kept (a submission covers every essay given), said: an empty file is often a copying mistake
        logger.warning("%d of the %d essays have no words (empty or whitespace only, e.g. %r): no span predicted "
                       "for them", len(empty), len(ids), empty[0])

    window_cache: dict[tuple, WindowArrays] = {}
    for i, (folder, weight) in enumerate(zip(folders, w, strict=True)):
        if weight == 0:
            logger.info("%s: weight 0, skipped", folder)
            continue
        t0 = time.perf_counter()
        ckpt = load_checkpoint(folder, dev, cpu_bf16)
        _add(timings, "load_s", time.perf_counter() - t0)
        t0 = time.perf_counter()
        key = _window_key(ckpt)
        if key not in window_cache:
            window_cache.clear()  # one tokenizer's windows at a time: checkpoints come grouped by run
            window_cache[key] = _make_windows(ckpt, table)
        _add(timings, "tokenize_s", time.perf_counter() - t0)
        probs = predict_word_probs(
            ckpt, table, batch_size, window_cache[key], timings, desc=f"model {i + 1}/{len(folders)}"
        )
        t0 = time.perf_counter()
        flat = np.concatenate([probs[k] for k in ids], axis=0)
        if flat.shape[0] >= MIN_WORDS_FOR_SPANLESS_WARNING and not (flat.argmax(axis=1) != O_ID).any():
            logger.warning(
                "%s predicts no span at all: every word of the %d essays has O as its most likely label; "
                "check that it is a trained checkpoint", folder, len(ids)
            )
        total += np.float32(weight) * flat
        _add(timings, "merge_s", time.perf_counter() - t0)
        del ckpt, probs, flat
        if dev.type == "cuda":
            torch.cuda.empty_cache()

    t0 = time.perf_counter()
    word_probs = {k: total[offsets[j] : offsets[j + 1]] for j, k in enumerate(ids)}
    if rescorer is not None:
        submission = rescorer.spans(word_probs, essays)[SUBMISSION_COLUMNS]
    else:
        submission = submission_from_probs(word_probs, chosen.config)[SUBMISSION_COLUMNS]
    if out is not None:
        atomic_write(out, lambda tmp: submission.to_csv(tmp, index=False))
    if probs_out is not None:
        save_word_probs(probs_out, word_probs, meta={"models": [str(f) for f in folders], "weights": w.tolist()})
    _add(timings, "postprocess_s", time.perf_counter() - t0)
    _add(timings, "total_s", time.perf_counter() - t_start)
    spanless = len(ids) - submission["id"].nunique()
    logger.info("predicted %d spans in %d essays%s (%.1f s)", len(submission), len(ids),
                f" ({spanless} of them with no span)" if spanless else "", timings["total_s"])
    return submission
