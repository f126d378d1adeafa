"""Figures of the training chapters: loss curves, learning rate per parameter group, next-box error per class."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from trackssm_lib.plots import iou_error_bars

MODEL_COLORS = ("#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
GROUP_COLORS = {"encoder": "#9467bd", "decoder": "#1f77b4"}


def loss_curves_figure(scalars: Mapping[str, Mapping[str, np.ndarray]], title: str = "",
                       best_epoch: int | None = None) -> Figure:
    """Training and validation loss per epoch (from :func:`trackssm_lib.model_eval.read_scalars`)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for tag, label, style in (("loss/train", "train (augmented)", "-o"), ("loss/val", "validation", "-s")):
        if tag in scalars and len(scalars[tag]["step"]):
            ax.plot(scalars[tag]["step"], scalars[tag]["value"], style, ms=3, label=label)
    if best_epoch:
        ax.axvline(best_epoch, color="k", ls=":", lw=1, label=f"best epoch {best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (official smooth L1, 6 heads)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def lr_figure(scalars: Mapping[str, Mapping[str, np.ndarray]], configured: Mapping[str, float] | None = None,
              title: str = "") -> Figure:
    """Learning rate of each parameter group at the end of every epoch; dashed: the configured (peak) value."""
    fig, ax = plt.subplots(figsize=(6.5, 3.0))
    groups = sorted(t.split("/", 1)[1] for t in scalars if t.startswith("lr/"))
    for g in groups:
        s = scalars[f"lr/{g}"]
        color = GROUP_COLORS.get(g)
        ax.plot(s["step"], s["value"], "-o", ms=3, label=g, color=color)
        if configured and g in configured:
            ax.axhline(configured[g], color=color, ls="--", lw=0.8, label=f"{g} configured {configured[g]:g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def prediction_error_figure(rows: Sequence[Mapping[str, Any]], models: Sequence[str] | None = None) -> Figure:
    """Mean IoU and mean centre error (px) of next-box predictions per class, one bar per model."""
    models = list(models or dict.fromkeys(r["model"] for r in rows))
    colors = [MODEL_COLORS[j % len(MODEL_COLORS)] for j in range(len(models))]
    fig, ax0, _ = iou_error_bars(list(rows), "model", models, colors, "mean IoU with the next box")
    handles, names = ax0.get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=max(1, len(models)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


__all__ = ["loss_curves_figure", "lr_figure", "prediction_error_figure"]
