"""Wall time of `portproof check` against a minimal hand-written script doing the same work.

Same work: load vit_tiny_patch16_224 (random init, offline), preprocess the 8 bundled photos, run the CPU
fp32 reference and the targets onnxruntime@cpu and cpu/bf16 on every sample, compare, and time 10 warm-up
+ 50 runs of each side. Both run as fresh processes, alternating, so imports count on both sides.
Run: .venv/bin/python benchmarks/overhead.py [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MINIMAL_SCRIPT = r'''
import copy, time, warnings
from importlib import resources
import onnxruntime, timm, torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

torch.manual_seed(0)
model = timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()
transform = create_transform(**resolve_data_config({}, model=model))
folder = resources.files("portproof").joinpath("data/images")
images = sorted(p for p in folder.iterdir() if p.name.endswith(".jpg"))
x = torch.stack([transform(Image.open(p).convert("RGB")) for p in images])

def timed(step):
    for _ in range(10):
        step()
    samples = []
    for _ in range(50):
        start = time.perf_counter(); step(); samples.append(time.perf_counter() - start)
    return sum(samples) / len(samples)

with torch.inference_mode():
    reference = torch.cat([model(b) for b in x.split(1)])
    timed(lambda: model(x[:1]))
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    out = torch.cat([bf16(b.to(torch.bfloat16)) for b in x.split(1)]).double()
    timed(lambda: bf16(x[:1].to(torch.bfloat16)))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    torch.onnx.export(model, (x[:1],), "/tmp/minimal.onnx", dynamo=False, input_names=["input"],
                      dynamic_axes={"input": {0: "batch"}})
session = onnxruntime.InferenceSession("/tmp/minimal.onnx", providers=["CPUExecutionProvider"])
ort = torch.cat([torch.from_numpy(session.run(None, {"input": b.numpy()})[0]) for b in x.split(1)]).double()
feed = {"input": x[:1].numpy()}
timed(lambda: session.run(None, feed))
r = reference.double()
for t in (out, ort):
    print(float((t - r).abs().max()), float(torch.nn.functional.cosine_similarity(t.flatten(), r.flatten(), dim=0)))
'''


def wall(command: list[str], environment: dict[str, str]) -> float:
    """Seconds the command took; exit 1 (a target failed its criteria) is a complete run too."""
    start = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, env=environment)
    if finished.returncode not in (0, 1):
        raise SystemExit(f"{command[2]} failed ({finished.returncode}): {finished.stderr.strip()[-500:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for both sides (1 is steadier on a busy machine)")
    args = parser.parse_args()
    environment = dict(os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}))
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "minimal.py"
        script.write_text(MINIMAL_SCRIPT)
        portproof = [sys.executable, "-m", "portproof", "check", "--offline", "--out", str(Path(tmp) / "logs"),
                     "--target", "onnxruntime@cpu", "--target", "cpu/bf16"]
        minimal = [sys.executable, str(script)]
        tool_times, script_times = [], []
        for _ in range(args.rounds):
            script_times.append(wall(minimal, environment))
            tool_times.append(wall(portproof, environment))
    tool, script_ = statistics.median(tool_times), statistics.median(script_times)
    print(f"portproof check: {', '.join(f'{t:.2f}' for t in tool_times)} s (median {tool:.2f} s)")
    print(f"minimal script:  {', '.join(f'{t:.2f}' for t in script_times)} s (median {script_:.2f} s)")
    print(f"ratio (portproof / minimal, medians): {tool / script_:.2f}  (target: <= 1.3)")


if __name__ == "__main__":
    main()
