"""How saturated an encoder's LSTM cells are on real text: pretrained, trained or fresh.

    python bench/saturation.py pretrained/ --data ../shared/data/imdb
    python bench/saturation.py checkpoints/latest --data data/sms_spam

Runs the first layer's forward direction step by step over 32 training texts (the gate
equations of cell.py) and reports, averaged over steps 50-100 (past the start-up), the
mean forget gate, the mean |c|, the share of units with |tanh(c)| > 0.95 (a saturated
cell passes almost no gradient to what feeds it) and the share of input gates outside
[0.05, 0.95]. The same numbers for a freshly initialised encoder come alongside.
"""

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def gate_stats(embedding, rnn, ids, hidden: int) -> dict:
    import torch

    x = embedding(ids)
    w_ih, w_hh, b_ih, b_hh = rnn.layer_weights(0, 0)
    h = torch.zeros(ids.shape[0], hidden)
    c = torch.zeros_like(h)
    rows = []
    for t in range(ids.shape[1]):
        gates = x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i, f, g, o = gates.chunk(4, 1)
        i, f, o, g = i.sigmoid(), f.sigmoid(), o.sigmoid(), g.tanh()
        c = f * c + i * g
        h = o * c.tanh()
        if t >= 50:
            stuck = ((i > 0.95) | (i < 0.05)).float().mean()
            rows.append([f.mean(), c.abs().mean(), (c.tanh().abs() > 0.95).float().mean(), stuck])
    keys = ("forget_mean", "abs_c", "saturated_tanh_c", "input_gate_saturated")
    return dict(zip(keys, torch.tensor(rows).mean(0).tolist(), strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("folder", help="a `textlstm pretrain` folder or a classifier run")
    ap.add_argument("--data", required=True, help="a folder with train.parquet (column text)")
    args = ap.parse_args()

    import pandas as pd
    import torch

    from textlstm import checkpoint
    from textlstm.config import from_dict
    from textlstm.model import TextLSTM

    torch.set_num_threads(1)
    folder = Path(args.folder)
    config = checkpoint.read_config(folder)
    if config.get("kind") == checkpoint.PRETRAINED_KIND:
        config, encoder, tokenizer = checkpoint.load_pretrained(folder)
    else:
        trained, config, _ = checkpoint.load_model(folder)
        encoder, tokenizer = trained.state_dict(), checkpoint.load_tokenizer(folder)
    model_cfg = from_dict(config).model
    texts = pd.read_parquet(Path(args.data) / "train.parquet")["text"].head(32).tolist()
    ids = [e.ids[:100] for e in tokenizer.encode_batch(texts)]
    ids = [row for row in ids if len(row) == 100]  # whole windows: no padding to handle
    batch = torch.tensor(ids)
    torch.manual_seed(0)
    fresh = TextLSTM(model_cfg, config["vocab_size"], 2).eval()
    loaded = TextLSTM(model_cfg, config["vocab_size"], 2).eval()
    loaded.load_encoder(encoder)
    with torch.no_grad():
        for name, model in (("this encoder", loaded), ("fresh init", fresh)):
            stats = gate_stats(model.embedding, model.rnn, batch, model_cfg.hidden_dim)
            print(f"{name:13s} " + "  ".join(f"{k} {v:.3f}" for k, v in stats.items()))
    print(f"({len(ids)} texts of at least 100 tokens, steps 50-100, layer 1 forward)")


if __name__ == "__main__":
    main()
