"""Cost of the layer pass against plain forwards, measured side by side in one run.

Time: the layer pass (`compare_layers`) on vit_tiny_patch16_224, both modes (what `check --layers` runs) and
the local mode alone (what `rescue` runs), against one plain reference forward plus one plain target forward
on the same inputs, alternating, several rounds, medians compared. Memory: peak RSS of fresh processes that
(a) load both models and run the plain forwards, (b) run the layer pass (both modes), (c) keep every module
output of one forward (what a capture-everything tool holds); the figure that matters is each peak beyond (a).
Run: .venv/bin/python benchmarks/layers.py [--target cpu/bf16] [--samples 8] [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

SETUP = """
import copy, resource, time, timm, torch
torch.set_num_threads({threads})
from portproof.backends.torch_eager import EagerBackend
from portproof.config import parse_target
from portproof.layers import compare_layers
torch.manual_seed(0)
reference = timm.create_model("vit_tiny_patch16_224").eval()
target_spec = parse_target({target!r})
inputs = {{"x": torch.randn({samples}, 3, 224, 224)}}  # by name, as every side takes its inputs
backend = EagerBackend(target_spec)
backend.prepare(reference, inputs)

def plain():
    with torch.inference_mode():
        reference(**inputs)
    backend.forward(backend.place(inputs))
    backend.synchronize()

def layer_pass(modes=("accumulated", "local")):
    return compare_layers(reference, reference, inputs, target=target_spec, modes=modes)

def keep_everything():
    kept = []
    hooks = [m.register_forward_hook(lambda m, i, o: kept.append(o.clone()) if isinstance(o, torch.Tensor) else None)
             for m in reference.modules()]
    with torch.inference_mode():
        reference(**inputs)
    for h in hooks:
        h.remove()
    return sum(t.numel() * t.element_size() for t in kept)

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""


def run_python(code: str) -> dict:
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cpu/bf16")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on both sides (1 is steadier on a busy machine)")
    args = parser.parse_args()
    setup = SETUP.format(target=args.target, samples=args.samples, threads=args.threads)

    timing = run_python(setup + f"""
import json
plain(); report = layer_pass(); layer_pass(("local",))  # warm every path
plain_s, layer_s, local_s = [], [], []
for _ in range({args.rounds}):
    start = time.perf_counter(); plain(); plain_s.append(time.perf_counter() - start)
    start = time.perf_counter(); report = layer_pass(); layer_s.append(time.perf_counter() - start)
    start = time.perf_counter(); layer_pass(("local",)); local_s.append(time.perf_counter() - start)
print(json.dumps({{"plain": plain_s, "layers": layer_s, "local": local_s, "rows": len(report.rows),
                  "modules": len(list(reference.modules()))}}))
""")
    memory = {}
    for name, action in (("plain", "plain()"), ("layers", "plain(); layer_pass()"), ("keep_everything", "plain(); keep_everything()")):
        memory[name] = run_python(setup + f"import json\n{action}\nprint(json.dumps({{'peak_mb': peak_mb()}}))")["peak_mb"]
    held = run_python(setup + "import json\nprint(json.dumps({'bytes': keep_everything()}))")["bytes"]

    plain_median, layer_median, local_median = (statistics.median(timing[k]) for k in ("plain", "layers", "local"))
    print(f"vit_tiny_patch16_224, {args.samples} samples in one batch, target {args.target}, {args.threads} torch threads, "
          f"{timing['modules']} modules, {timing['rows']} compared module outputs")
    print(f"plain reference + target forward: {', '.join(f'{t:.3f}' for t in timing['plain'])} s (median {plain_median:.3f})")
    print(f"layer pass (both modes):          {', '.join(f'{t:.3f}' for t in timing['layers'])} s (median {layer_median:.3f})")
    print(f"layer pass (local mode, rescue's): {', '.join(f'{t:.3f}' for t in timing['local'])} s (median {local_median:.3f})")
    print(f"ratio to the plain forwards (medians): both modes {layer_median / plain_median:.2f}, local mode "
          f"{local_median / plain_median:.2f}  (targets: under 3 at 1 sample, under 2 at 8)")
    print(f"peak RSS: plain forwards {memory['plain']:.0f} MB, layer pass {memory['layers']:.0f} MB "
          f"(+{memory['layers'] - memory['plain']:.0f} MB), keeping every module output {memory['keep_everything']:.0f} MB "
          f"(+{memory['keep_everything'] - memory['plain']:.0f} MB; the outputs alone are {held / 2**20:.0f} MB)")


if __name__ == "__main__":
    main()
