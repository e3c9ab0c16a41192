"""rnnfast: the fastai book's Elman-ReLU language models with the recurrence fused into one op."""
import torch  # noqa: F401  (must be loaded before the extension library)

from . import reference
from .ops import elman_rnn, lm_head_loss
from .models import ElmanRNN, LMModel1, LMModel2, LMModel3, LMModel4

__all__ = ["elman_rnn", "lm_head_loss", "reference", "library_path", "ElmanRNN", "LMModel1",
           "LMModel2", "LMModel3", "LMModel4"]
__version__ = "0.1.0"


def library_path() -> str:
    """Path of the compiled library; load it with ``torch.ops.load_library`` (Python) or dlopen
    it in C++ before ``torch::jit::load`` so TorchScript models can find the rnnfast ops."""
    from . import _C
    return _C.__file__
