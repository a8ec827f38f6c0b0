"""report.md in Chinese (`--lang zh`): the adaptation report in the section order of the reports written
for Ascend ports — 模型信息, 硬件环境, 软件环境, 安装与运行, 权重加载情况, 输入数据, 运行结果, 精度对比,
(逐层对比,) 评分字段, 适配结论 — filled from the same result as the English report.md, computing nothing.
"""

from __future__ import annotations

import json

from ..result import CheckResult
from .formatting import code_fence, milliseconds, number, share
from .formatting import code_span as code
from .formatting import escape_markdown as esc
from .i18n import texts, verdict_reasons
from .plots import layer_reports
from .summary_json import scoring_fields


def render(result: CheckResult) -> str:
    t = texts("zh")
    model_name = result.model.architecture + (f".{result.model.tag}" if result.model.tag else "")
    out: list[str] = []
    if result.random_weights:
        out += [f"> **{t['random_banner']}**", ">",
                f"> {t['random_detail'].format(seed=result.weights.random_seed)}", ""]
    targets = ", ".join(esc(target.label) for target in result.targets)
    out += [f"# {esc(t['title'].format(model=model_name))}：{targets} 对比 {esc(result.reference.label)}", ""]
    model = result.model
    out += _section(t["model"], [
        f"{t['name']}：{code(model_name)}（{t['requested_as']} {code(model.requested)}）",
        f"{t['family']}：{esc(model.family)}；{t['hub_repo']}：{esc(model.hub_repo or t['none'])}",
        f"{t['parameters']}：{model.num_parameters:,}",
        f"{t['outputs_compared']}：{', '.join(model.output_names)}",
    ])
    environment = result.environment
    hardware = [f"{t['reference']}：{esc(result.reference.label)} —— {esc(_device(result.reference.description))}"]
    hardware += [f"{t['target']} {i}：{esc(target.label)} —— {esc(_device(target.description))}"
                 for i, target in enumerate(result.targets)]
    hardware.append(f"{t['cpu']}：{esc(environment.get('cpu'))}（"
                    f"{t['cores'].format(cores=environment.get('cpu_count'), threads=environment.get('torch_threads'))}）")
    out += _section(t["hardware"], hardware)
    software = [f"{t['python']}：{esc(environment.get('python'))}", f"{t['platform']}：{esc(environment.get('platform'))}"]
    software += [f"{esc(name)}：{esc(version)}" for name, version in (environment.get("packages") or {}).items() if version]
    software.append(f"CANN：{esc(environment.get('cann') or t['not_installed'])}")
    software.append(f"portproof：{esc(environment.get('portproof'))}")
    out += _section(t["software"], software)
    command_line = environment.get("command_line") or "portproof check"
    out += [f"## {t['install_run']}", "", code_fence(command_line),
            "make setup   # 或：pip install -e .（沿用已安装的 torch / torch_npu）",
            command_line, code_fence(command_line), ""]
    weights = result.weights
    weight_lines = [
        f"{t['pretrained_loaded']}：" + (t["yes"] if weights.pretrained_used else t["random_init"].format(seed=weights.random_seed)),
        f"{t['source']}：{esc(weights.source_kind)}",
        f"{t['path']}：{code(weights.path)}" if weights.path else f"{t['path']}：{t['none']}",
        (f"{t['size']}：{t['bytes'].format(size=weights.file_size)}；sha256 {code(weights.sha256)}" if weights.sha256
         else f"sha256：{t['none']}"),
        f"pretrained_used：{str(weights.pretrained_used).lower()}",
        f"local_weight_used：{str(weights.local_weight_used).lower()}",
    ]
    if weights.missing_keys or weights.unexpected_keys:
        weight_lines.append(t["partial"].format(missing=len(weights.missing_keys), unexpected=len(weights.unexpected_keys)))
    weight_lines += [f"{t['searched']}：{esc(place)}" for place in weights.searched]
    out += _section(t["weights"], weight_lines)
    inputs = result.inputs
    out += _section(t["inputs"], [
        t["input_line"].format(kind=esc(inputs.kind), n=inputs.num_samples, shape=list(inputs.shape[1:]),
                               batch=inputs.batch_size, seed=inputs.seed),
        f"{t['files']}：{esc(', '.join(inputs.sources))}" if inputs.sources else f"{t['files']}：{t['generated']}",
        *[f"{t['skipped']}：{esc(s)}" for s in inputs.skipped],
        *[f"{t['note']}：{esc(note)}" for note in result.notes],
    ])
    out += _run_result(result, t)
    out += _comparison(result, t)
    out += _layers(result, t)
    out += _scoring(result, t)
    out += _conclusion(result, t)
    return "\n".join(out) + "\n"


def _section(title: str, items: list[str]) -> list[str]:
    return [f"## {title}", "", *[f"- {item}" for item in items], ""]


def _device(description: dict) -> str:
    return str(description.get("device_name") or description.get("device") or "")


def _run_result(result: CheckResult, t: dict) -> list[str]:
    rows = [f"## {t['run_result']}", "",
            f"| {t['side']} | {t['run_status']} | {t['output_shapes']} | {t['mean_latency']} | {t['median_latency']} | "
            f"{t['cold_run']} | {t['speedup']} |",
            "|---|---|---|---|---|---|---|"]
    ref = result.reference
    shapes = "; ".join(f"{n} {list(s)}" for n, s in ref.output_shapes.items())
    lat = ref.latency
    rows.append(f"| {t['reference']} {esc(ref.label)} | SUCCESS | {shapes} | {milliseconds(lat and lat.mean_ms)} | "
                f"{milliseconds(lat and lat.median_ms)} | {milliseconds(lat and lat.cold_ms)} | 1.00x |")
    for target in result.targets:
        shapes = "; ".join(f"{c.name} {list(c.target_shape)}" for c in target.comparisons) or "n/a"
        lat = target.latency
        speed = f"{target.speedup:.2f}x" if target.speedup else "n/a"
        status = "ERROR" if target.status == "ERROR" else "SUCCESS"
        rows.append(f"| {t['target']} {esc(target.label)} | {status} | {shapes} | {milliseconds(lat and lat.mean_ms)} | "
                    f"{milliseconds(lat and lat.median_ms)} | {milliseconds(lat and lat.cold_ms)} | {speed} |")
    rows.append("")
    timing = result.config.timing
    rows += [t["latency_note"].format(batch=result.inputs.batch_size, warmup=timing.warmup, iters=timing.iters)
             if timing.enabled else t["no_bench"], ""]
    for target in result.targets:
        if target.error:
            rows += [f"**{esc(t['raised'].format(label=target.label))}：** {esc(target.error)}", ""]
    return rows


def _comparison(result: CheckResult, t: dict) -> list[str]:
    rows = [f"## {t['comparison']}", ""]
    if result.reference.rel_l2_vs_fp64:
        floor = ", ".join(f"{n} {number(v)}" for n, v in result.reference.rel_l2_vs_fp64.items())
        rows += [t["noise_floor"].format(floor=floor), ""]
    rows += [f"| {t['target_col']} | {t['output_col']} | max_abs_diff | mean_abs_diff | max_rel_diff | rel_l2 | cosine | "
             f"{t['min_sample_cosine']} | {t['within_1']} | {t['noise_multiple']} | top-1 | top-5 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for target in result.targets:
        for c in target.comparisons:
            top1 = share(c.topk.top1_agreement) if c.topk else "—"
            top5 = share(c.topk.topk_agreement) if c.topk else "—"
            rows.append(
                f"| {esc(target.label)} | {c.name} | {number(c.max_abs_diff)} | {number(c.mean_abs_diff)} | "
                f"{number(c.max_rel_diff)} | {number(c.rel_l2)} | {number(c.cosine_similarity, 9)} | "
                f"{number(c.min_sample_cosine, 9)} | {share(c.within_tolerance.get('1%'))} | {number(c.noise_multiple, 4)} | "
                f"{top1} | {top5} |"
            )
    rows += ["", t["full_comparison"], ""]
    return rows


def _layers(result: CheckResult, t: dict) -> list[str]:
    rows: list[str] = []
    for report in layer_reports(result):
        none = t["layers_none"]
        rows += [f"## {t['layers']}：{esc(str(report.target))}", ""]
        if report.rows:  # an empty pass (not run for this target, or failed) has no verdict to state
            rows += [t["layers_first"].format(local=code(report.first_divergent) if report.first_divergent else none,
                                              accumulated=(code(report.first_divergent_accumulated)
                                                           if report.first_divergent_accumulated else none)), ""]
        rows += [f"- 说明：{esc(note)}" for note in report.notes]
        rows += [""] if report.notes else []
        if report.worst_local:
            rows += [t["layers_worst"], "",
                     f"| {t['module']} | {t['module_type']} | {t['local_cosine']} | {t['local_rel_l2']} | "
                     f"{t['accumulated_cosine']} | {t['accumulated_rel_l2']} |", "|---|---|---|---|---|---|"]
            for label in report.worst_local:
                row = report.row(label)
                if row is None:
                    continue
                local, accumulated = row.local, row.accumulated
                rows.append(f"| `{esc(label)}` | {esc(row.module_type)} | {number(local.cosine, 9)} | "
                            f"{esc(local.error) if local.error else number(local.rel_l2)} | {number(accumulated.cosine, 9)} | "
                            f"{number(accumulated.rel_l2)} |")
            rows.append("")
    return rows


def _scoring(result: CheckResult, t: dict) -> list[str]:
    fields = scoring_fields(result)
    rows = [f"## {t['scoring']}", "",
            t["scoring_intro"].format(target=code(fields["scoring_target"]), output=code(fields["scoring_output"]),
                                      reference=code(result.reference.label)), "",
            f"| {t['field']} | {t['value']} |", "|---|---|"]
    for key in ("status", "verdict", "output_shape", "latency_ms", "pretrained_used", "local_weight_used", "weight_path",
                "max_abs_diff", "mean_abs_diff", "cosine_similarity", "top1_match", "top5_match",
                "match_within_1_percent", "match_basis"):
        value = fields[key] if isinstance(fields[key], str) else json.dumps(fields[key])
        rows.append(f"| {key} | {esc(value)} |")
    return rows + [""]


def _conclusion(result: CheckResult, t: dict) -> list[str]:
    lines = [f"## {t['conclusion']}", ""]
    criteria = result.config.criteria
    for target in result.targets:
        key = {"PASS": "pass_line", "FAIL": "fail_line"}.get(target.status, "error_line")
        head = f"- **{esc(t[key].format(label=target.label))}**"
        if target.error:
            lines.append(f"{head} —— {esc(target.error)}")
            continue
        reasons = [(held, sentence) for c in target.comparisons for held, sentence in verdict_reasons(c, criteria, "zh")]
        shown = [s for held, s in reasons if not held] if target.status == "FAIL" else [s for _, s in reasons]
        lines.append(f"{head} —— " + "；".join(esc(s) for s in shown) + "。")
    if result.random_weights:
        lines.append(f"- {t['random_conclusion'].format(banner=t['random_banner'])}")
    return lines
