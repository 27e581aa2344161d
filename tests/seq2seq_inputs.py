"""Random token batches for the encoder-decoder tests (test_transformer.py, test_kv_cache.py)."""

from __future__ import annotations

import torch

from attnlib.data import CharVocab

# Token ids 0-2 are PAD, BOS and EOS; random tokens are drawn from the rest of the vocabulary.
FIRST_TOKEN = 3


def random_source(lengths, vocab_size: int, seed: int = 0, width: int | None = None):
    """Source ids (B, width) with PAD after each sequence's length, and the lengths as a tensor."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths) if width is None else width
    source = torch.randint(FIRST_TOKEN, vocab_size, (len(lengths), width), generator=g)
    lens = torch.tensor(lengths)
    source[torch.arange(width)[None, :] >= lens[:, None]] = CharVocab.PAD
    return source, lens


def random_target_in(batch: int, steps: int, vocab_size: int, seed: int = 1):
    """Decoder inputs (batch, steps): BOS, then random tokens."""
    target_in = torch.randint(FIRST_TOKEN, vocab_size, (batch, steps), generator=torch.Generator().manual_seed(seed))
    target_in[:, 0] = CharVocab.BOS
    return target_in
