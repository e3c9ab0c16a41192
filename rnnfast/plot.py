"""Training curves as a PNG: ``rnnfast train --plot curves.png``."""
from typing import Sequence

from .train import EpochResult


def save_curves(path: str, history: Sequence[EpochResult], title: str = "") -> None:
    """Loss (train, valid) and accuracy (train, valid) per epoch, side by side."""
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("--plot needs matplotlib: pip install matplotlib") from e
    matplotlib.use("Agg")   # files only: no display needed, none opened
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [r.epoch + 1 for r in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    loss_ax.plot(epochs, [r.train_loss for r in history], marker=".", label="train")
    loss_ax.plot(epochs, [r.valid_loss for r in history], marker=".", label="valid")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    acc_ax.plot(epochs, [r.train_accuracy for r in history], marker=".", label="train")
    acc_ax.plot(epochs, [r.accuracy for r in history], marker=".", label="valid")
    acc_ax.set(xlabel="epoch", ylabel="next-token accuracy", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # epochs are whole numbers
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
