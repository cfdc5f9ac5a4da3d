"""Progress lines of a training run: one plain line per epoch, search trial and fold."""

from __future__ import annotations

from physioaffect.training.config import TrainConfig
from physioaffect.training.fold import deep_label

__all__ = ["epoch_line", "fold_line", "trial_line", "choice_line", "headline_metrics"]


def epoch_line(fold: str, row: dict, epochs: int) -> str:
    """One plain line per epoch: fold, epoch, losses, validation metric."""
    net = f" ({row['adaptation']} network)" if row.get("adaptation") else ""
    parts = [f"fold {fold}{net} epoch {row['epoch']}/{epochs}",
             f"train_loss {row['train_loss']:.4f}"]
    if "val_loss" in row:
        parts.append(f"val_loss {row['val_loss']:.4f}")
    if "val_accuracy" in row:
        parts.append(f"val_accuracy {row['val_accuracy']:.3f}")
    parts.append(f"{row.get('seconds', 0.0):.1f} s")
    return ", ".join(parts)


def fold_line(cfg: TrainConfig, s: dict) -> str:
    """One plain line when a fold ends: kept epoch, why it stopped, the adaptation chosen and
    the live-protocol test metric of the network beside the baselines'."""
    label = deep_label(cfg)
    key = "accuracy" if cfg.task == "classification" else "ccc"
    live = headline_metrics(s)
    if label not in live:
        return f"fold {s['name']} done"
    scores = ", ".join(f"{m} {v.get(key, float('nan')):.3f}" for m, v in live.items())
    ad = s.get("adaptation") or {}
    chosen = f"; adaptation {ad['variant']}" if ad.get("variant") else ""
    return (f"fold {s['name']} done: kept epoch {s['best_epoch']} of {s['epochs_run']} "
            f"({s.get('stopped', '')}){chosen}; live test {key}: {scores}")


def headline_metrics(s: dict) -> dict[str, dict]:
    """Model -> metrics of a fold summary under its headline protocol (``live`` where the
    fold has it, else ``session``; summaries of older runs hold one set per model)."""
    out = {}
    for model, m in (s.get("metrics") or {}).items():
        if isinstance(m, dict) and any(isinstance(v, dict) for v in m.values()):
            m = m.get("live") or m.get("session") or {}
        out[model] = m
    return out


def trial_line(t: dict) -> str:
    """One plain line per finished search trial."""
    params = ", ".join(f"{k}={v}" for k, v in t["params"].items())
    return (f"fold {t['fold']} search: setting {t['setting'] + 1} ({params}), inner fold "
            f"{t['inner'] + 1}: {t['metric']} {t['score']:.4f}")


def choice_line(s: dict) -> str:
    """One plain line with a fold's chosen search setting."""
    c = s.get("search")
    if not c:
        return ""
    params = ", ".join(f"{k}={v}" for k, v in c["chosen"].items())
    return (f"fold {s['name']} search chose {params} (mean {c['metric']} "
            f"{c['scores'][c['chosen_setting']]:.4f} on validation subjects)")
