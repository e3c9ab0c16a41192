"""rnnfast: the course notebook's Elman language models and a drop-in torch.nn.RNN, each
recurrence fused into one op."""
import torch  # noqa: F401  (must be loaded before the extension library)

from . import reference
from .ops import elman_rnn, lm_head_loss
from .models import ElmanRNN, LMModel1, LMModel2, LMModel3, LMModel4, LMModel5
from .rnn import RNN

__all__ = ["elman_rnn", "lm_head_loss", "reference", "library_path", "ElmanRNN", "LMModel1",
           "LMModel2", "LMModel3", "LMModel4", "LMModel5", "RNN"]
__version__ = "0.1.0"


def library_path() -> str:
    """Path of the compiled library; load it with ``torch.ops.load_library`` (Python) or dlopen
    it in C++ before ``torch::jit::load`` so TorchScript models can find the rnnfast ops."""
    from . import _C
    return _C.__file__
