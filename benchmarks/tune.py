"""Does `portproof tune` find the configuration a person would, and how much faster is it than eager fp32?

One run: `portproof tune MODEL --device DEVICE` (batch 1), then each configuration it found passing (or, with
--hand-top N, the baseline and the N fastest) is timed by hand in a clean process of its own with the plain
library calls a person would write (torch eager, torch.compile with its mode, ONNX Runtime's InferenceSession,
OpenVINO's compiled model with the precision hint; on a GPU, synchronised after each call; no portproof code),
and the two are printed side by side: the winner's speedup over eager fp32 as tune measured it and as timed by
hand, and the winner's hand-timed latency over the best hand-timed candidate's (1.00 = tune found the fastest;
the target is <= 1.10).
Run: .venv/bin/python benchmarks/tune.py [--model vit_tiny_patch16_224] [--device cpu|cuda] [--iters 100]
     [--budget S] [--threads N] [--hand-top N] [--out DIR] [-- more tune options]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HAND_TIMED = """
import json, os, sys, tempfile, time, timm, torch
torch.set_num_threads({threads})
torch.manual_seed(0)
model = timm.create_model({model!r}).eval()
x = torch.randn(1, *model.pretrained_cfg["input_size"])
backend, dtype, device = {backend!r}, {dtype!r}, {device!r}
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
if backend in ("eager", "compile"):
    cast = {{"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}}.get(dtype, torch.float32)
    autocast = {{"amp-bf16": torch.bfloat16, "amp-fp16": torch.float16}}.get(dtype)
    model, x = model.to(device, cast), x.to(device, cast)
    if {channels_last!r}:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = dtype == "tf32"
    if backend == "compile":
        model = torch.compile(model, mode={mode!r})
    def run():
        with torch.inference_mode(), torch.autocast(device, dtype=autocast, enabled=autocast is not None):
            model(x)
        sync()
else:
    path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    half = backend == "onnxruntime" and dtype == "fp16"
    torch.onnx.export(model.half() if half else model, (x.half() if half else x,), path, dynamo=False,
                      input_names=["x"], output_names=["y"])
    feed = (x.half() if half else x).numpy()
    if backend == "onnxruntime":
        import onnxruntime
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = {threads}
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        run = lambda: session.run(None, {{"x": feed}})
    else:
        import openvino
        core = openvino.Core()
        compiled = core.compile_model(core.read_model(path), "CPU", {{
            "INFERENCE_PRECISION_HINT": {{"fp32": "f32", "bf16": "bf16"}}[dtype], "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": {threads}}})
        request = compiled.create_infer_request()
        run = lambda: request.infer({{"x": feed}})
for _ in range({warmup}):
    run()
times = []
for _ in range({iters}):
    start = time.perf_counter(); run(); times.append((time.perf_counter() - start) * 1000)
times.sort()
print(json.dumps({{"median_ms": times[len(times) // 2]}}))
"""


def hand_time(model: str, target: str, threads: int | None, warmup: int, iters: int) -> float:
    from portproof.config import parse_target  # reads the label only; the timing itself runs no portproof code

    spec = parse_target(target)
    code = HAND_TIMED.format(model=model, backend=spec.backend, dtype=spec.dtype, device=spec.device,
                             channels_last=spec.channels_last, mode=spec.mode, threads=threads or os.cpu_count(),
                             warmup=warmup, iters=iters)
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])["median_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_tiny_patch16_224")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hand-top", type=int, default=None, help="time by hand only the baseline and the N fastest "
                                                                   "passing configurations (each compile takes long)")
    parser.add_argument("--out", default=None, help="keep tune's files here (default: a temporary folder)")
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--budget", type=float, default=None)
    parser.add_argument("--threads", type=int, default=None, help="tune with this torch thread count only (1 is "
                                                                   "steadier on a busy machine)")
    args, more = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or scratch
        command = [sys.executable, "-m", "portproof", "tune", args.model, "--offline", "--device", args.device,
                   "--out", out, "--quiet", *(["--budget", str(args.budget)] if args.budget else []),
                   *(["--threads", str(args.threads), "--thread-counts", str(args.threads)] if args.threads else []),
                   *[word for word in more if word != "--"]]
        subprocess.run(command, check=False)
        tuned = json.loads((Path(out) / "tune.json").read_text())
    rows = [r for r in tuned["rows"] if r["batch_size"] == 1 and r["status"] == "PASS" and "+fp32=" not in r["target"]]
    winner = tuned["fastest_passing"]["1"]
    baseline = next(r for r in rows if r["target"] == args.device and r["threads"] == winner["threads"])
    print(f"{args.model}, batch 1, tune took {tuned['elapsed_s']:.0f} s for {len(tuned['rows'])} configurations; "
          f"{len(rows)} passed" + (f"; timed by hand: eager fp32 and the {args.hand_top} fastest" if args.hand_top else ""))
    if args.hand_top is not None:
        rows = [baseline] + sorted((r for r in rows if r is not baseline), key=lambda r: r["median_ms"])[:args.hand_top]
    hand = {}
    for row in rows:
        key = (row["target"], row["threads"])
        if key not in hand:
            hand[key] = hand_time(args.model, row["target"], row["threads"], args.warmup, args.iters)
        print(f"  {row['target']:40s} threads {row['threads'] or '-'}: tune {row['median_ms']:8.3f} ms   by hand {hand[key]:8.3f} ms")
    best_key = min(hand, key=hand.get)
    winner_key = (winner["target"], winner["threads"])
    eager_hand = hand[(baseline["target"], baseline["threads"])]
    print(f"winner {winner['target']} ({winner['threads'] or '-'} threads): speedup over eager fp32 "
          f"{baseline['median_ms'] / winner['median_ms']:.2f}x as tune measured it, {eager_hand / hand[winner_key]:.2f}x "
          "by hand")
    print(f"best by hand: {best_key[0]} ({best_key[1] or '-'} threads) {hand[best_key]:.3f} ms; winner by hand "
          f"{hand[winner_key]:.3f} ms: ratio {hand[winner_key] / hand[best_key]:.2f} (target: <= 1.10)")
    print(f"median of the hand-timed candidates: {statistics.median(hand.values()):.3f} ms")


if __name__ == "__main__":
    main()
