"""attnlib: the tested PyTorch package behind the course "Attention, from intuition to Vision Transformers".

One module per idea, in the order the chapters meet them:

- :mod:`attnlib.functional`: the math (masked softmax, scaled dot-product attention, masks).
- :mod:`attnlib.attention`: attention layers as ``nn.Module`` s that hold parameters.
- :mod:`attnlib.plot`: figures the chapters share (attention heatmaps).
- :mod:`attnlib.utils`: the device and the random seed, set in one place, and ``rounded`` for printing.
"""

from attnlib import attention, functional, plot, utils
from attnlib.utils import get_device, rounded, set_seed

__version__ = "0.1.0"

__all__ = ["attention", "functional", "plot", "utils", "get_device", "rounded", "set_seed", "__version__"]
