"""Does portproof measure the latency a user would measure? Each side timed by portproof, and by a plain
script in a clean process doing the same thing (same model, batch, warm-up and timed runs, median).

Sides: eager CPU fp32 (portproof's reference), eager CPU bf16, ONNX Runtime on the CPU. Prints, per side,
portproof's median, the independent median and their ratio (target: within 10%). Rounds alternate the two,
so that drift on a noisy machine hits both.
Run: .venv/bin/python benchmarks/latency_fidelity.py [--rounds 3] [--model vit_tiny_patch16_224] [--in-process]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

WARMUP, ITERS = 10, 50

INDEPENDENT = r'''
import json, sys, tempfile, time, warnings
import timm, torch

model_name, side = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
model = timm.create_model(model_name, pretrained=False).eval()
x = torch.randn(1, *model.pretrained_cfg["input_size"])

def median_ms(step):
    for _ in range(WARMUP):
        step()
    samples = []
    for _ in range(ITERS):
        start = time.perf_counter()
        step()
        samples.append((time.perf_counter() - start) * 1000.0)
    samples.sort()
    return (samples[(len(samples) - 1) // 2] + samples[len(samples) // 2]) / 2

if side == "onnxruntime@cpu":
    import onnxruntime
    path = tempfile.mktemp(suffix=".onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), path, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}
    print(json.dumps(median_ms(lambda: session.run(None, feed))))
else:
    dtype = torch.bfloat16 if side == "cpu/bf16" else torch.float32
    model, x = model.to(dtype), x.to(dtype)
    with torch.inference_mode():
        print(json.dumps(median_ms(lambda: model(x))))
'''.replace("WARMUP", str(WARMUP)).replace("ITERS", str(ITERS))

SIDES = ("cpu", "cpu/bf16", "onnxruntime@cpu")


def independent(model: str, side: str) -> float:
    run = subprocess.run([sys.executable, "-c", INDEPENDENT, model, side], capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def by_portproof(model: str, in_process: bool) -> dict[str, float]:
    """One check with the bf16 and ONNX Runtime targets; the fp32 side is its reference."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "portproof", "check", model, "--weights", "random", "--offline",
                   "--inputs", "random", "--num-samples", "1", "--target", "cpu/bf16", "--target", "onnxruntime@cpu",
                   "--no-fp64-reference", "--warmup", str(WARMUP), "--iters", str(ITERS), "--out", out, "--json"]
        run = subprocess.run(command + (["--in-process"] if in_process else []), capture_output=True, text=True)
        if run.returncode not in (0, 1):
            raise SystemExit(f"portproof check failed: {run.stderr.strip().splitlines()[-1]}")
        summary = json.loads(run.stdout)
    medians = {"cpu": summary["reference"]["latency"]["median_ms"]}
    medians.update({t["label"]: t["latency"]["median_ms"] for t in summary["targets"]})
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="vit_tiny_patch16_224")
    parser.add_argument("--in-process", action="store_true", help="time portproof's in-process mode instead")
    args = parser.parse_args()
    ratios: dict[str, list[float]] = {side: [] for side in SIDES}
    for round_number in range(args.rounds):
        first_portproof = round_number % 2 == 0
        if first_portproof:
            ours = by_portproof(args.model, args.in_process)
        theirs = {side: independent(args.model, side) for side in SIDES}
        if not first_portproof:
            ours = by_portproof(args.model, args.in_process)
        for side in SIDES:
            ratios[side].append(ours[side] / theirs[side])
            print(f"round {round_number + 1} {side:16} portproof {ours[side]:8.3f} ms  independent {theirs[side]:8.3f} ms  "
                  f"ratio {ours[side] / theirs[side]:.3f}", flush=True)
    print(f"\n{args.model}, batch 1, {WARMUP} warm-up + {ITERS} timed runs, median of {args.rounds} rounds:")
    for side in SIDES:
        ratio = statistics.median(ratios[side])
        print(f"  {side:16} portproof / independent = {ratio:.3f}  ({'within' if abs(ratio - 1) <= 0.10 else 'OUTSIDE'} 10%)")


if __name__ == "__main__":
    main()
