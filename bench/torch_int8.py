"""torch's own int8 LSTM against its fp32 one: one layer and direction, the default shape.

    .venv/bin/python bench/torch_int8.py [--threads 1]

`torch.quantized_lstm` (dynamic int8: fbgemm weights, activations quantized per step) is
the kernel `torch.ao.nn.quantized.dynamic.LSTM` calls; fp32 is `torch.lstm`, the op
model.py's DenseLSTM calls. Weights are quantized per output row. Prints ms per call and
the largest output difference, for a single text and batches of 128 short and long texts.
Why it matters: it is the int8 path a torch engine would have; ONNX Runtime's is faster.
"""

import argparse
import time
import warnings

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    warnings.simplefilter("ignore")  # quantized tensor creation is deprecated in torch 2.13
    emb = hidden = args.hidden
    w_ih, w_hh = torch.randn(4 * hidden, emb) * 0.1, torch.randn(4 * hidden, hidden) * 0.1
    b_ih, b_hh = torch.randn(4 * hidden) * 0.1, torch.randn(4 * hidden) * 0.1

    def per_row(w):
        scale = w.abs().amax(1).clamp(min=1e-12) / 127
        q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
        zeros = torch.zeros(len(scale), dtype=torch.long)
        return torch._make_per_channel_quantized_tensor(q, scale.double(), zeros, 0)

    prepack = torch.ops.quantized.linear_prepack
    cell = torch.ops.quantized.make_quantized_cell_params_dynamic(
        prepack(per_row(w_ih), b_ih), prepack(per_row(w_hh), b_hh), b_ih, b_hh, True
    )
    print("| batch x steps | fp32 torch.lstm | int8 torch.quantized_lstm | int8 speed | max diff |")
    print("|---|---|---|---|---|")
    for batch, steps in [(1, 20), (128, 20), (128, 256)]:
        x, zero = torch.randn(batch, steps, emb), torch.zeros(1, batch, hidden)
        fp32 = (torch.lstm, [w_ih, w_hh, b_ih, b_hh], {})
        int8 = (torch.quantized_lstm, [cell], dict(dtype=torch.qint8, use_dynamic=True))

        def run(kernel, x=x, zero=zero):
            op, params, extra = kernel
            return op(x, (zero, zero), params, True, 1, 0.0, False, False, True, **extra)[0]

        with torch.no_grad():
            diff = (run(fp32) - run(int8)).abs().max().item()
            ms = []
            for kernel in (fp32, int8):
                run(kernel)
                n = max(5, int(4000 / (batch * steps / 20)))
                started = time.perf_counter()
                for _ in range(n):
                    run(kernel)
                ms.append((time.perf_counter() - started) / n * 1000)
        print(
            f"| {batch} x {steps} | {ms[0]:.2f} ms | {ms[1]:.2f} ms | {ms[0] / ms[1]:.2f}x "
            f"| {diff:.3f} |"
        )


if __name__ == "__main__":
    main()
