"""attnlib: the tested PyTorch package behind the course "Attention, from intuition to Vision Transformers".

One module per idea, in the order the chapters meet them:

- :mod:`attnlib.functional`: the math (masked softmax, scaled dot-product attention, masks).
- :mod:`attnlib.attention`: attention layers, torch modules (``nn.Module``) that hold parameters.
- :mod:`attnlib.positional`: position information (sinusoidal and learned).
- :mod:`attnlib.models`: the small models chapters 2, 3, 5, 6 and 7 train for their experiments.
- :mod:`attnlib.seq2seq`: RNN encoder-decoders with and without attention (chapter 4).
- :mod:`attnlib.transformer`: the Transformer's layers, stacks and an encoder-decoder model (chapter 6).
- :mod:`attnlib.vit`: patches, the Vision Transformer and attention rollout (chapter 7).
- :mod:`attnlib.efficient`: attention that never stores the full weight matrix, and the KV cache (chapter 8).
- :mod:`attnlib.gpt`: a GPT, a decoder-only language model, from the course's parts: rotary positions,
  grouped-query attention, sampling (chapter 9).
- :mod:`attnlib.data`: data generated from a seed, and minibatches.
- :mod:`attnlib.training`: the one training loop (``fit``), with a progress bar and a returned history.
- :mod:`attnlib.plot`: figures the chapters share (attention heatmaps, log axes, attention explorers).
- :mod:`attnlib.diagrams`: the schematic diagrams of the mechanisms, drawn by code.
- :mod:`attnlib.utils`: the device and the random seed, set in one place, and ``rounded`` for printing.
"""

from attnlib import (
    attention,
    data,
    diagrams,
    efficient,
    functional,
    gpt,
    models,
    plot,
    positional,
    training,
    transformer,
    utils,
    vit,
)
from attnlib.attention import AdditiveAttention, DotProductAttention, MultiHeadAttention, SingleHeadAttention
from attnlib.transformer import TransformerDecoderLayer, TransformerEncoderLayer
from attnlib.utils import get_device, rounded, set_seed

__version__ = "0.2.0"

__all__ = [
    "attention",
    "data",
    "diagrams",
    "efficient",
    "functional",
    "gpt",
    "models",
    "plot",
    "positional",
    "training",
    "transformer",
    "utils",
    "vit",
    "AdditiveAttention",
    "DotProductAttention",
    "MultiHeadAttention",
    "SingleHeadAttention",
    "TransformerDecoderLayer",
    "TransformerEncoderLayer",
    "get_device",
    "rounded",
    "set_seed",
    "__version__",
]
