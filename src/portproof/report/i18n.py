"""The words of the human-readable reports in each language (`--lang en|zh`), and the sentences that
explain a verdict, built from the measured values rather than translated from the English ones.

The Chinese report follows the section order of the adaptation reports written for Ascend ports:
模型信息, 硬件环境, 软件环境, 权重加载情况, 运行结果, 精度对比, 评分字段, 适配结论. Metric and field
names (cosine_similarity, rel_l2, pretrained_used, ...) stay as they are in both languages: they are
the names a reader finds in summary.json. Punctuation is in the tables too ("colon", "semicolon", ...):
Chinese text takes full-width marks.
"""

from __future__ import annotations

from .. import rules
from ..config import Criteria
from ..results import RANDOM_WEIGHTS_BANNER, OutputComparison
from .formatting import criterion_figures, milliseconds

LANGUAGES = ("en", "zh")

_EN = {
    "html_lang": "en",
    "criteria_heading": "Verdict by criterion",
    "criteria_intro": "Each cell: the target's verdict under that criterion, and the measured quantities that decided "
                      "it. The first criterion, {first}, decides the target's status and the exit code; the formulas and "
                      "their sources are in the README, under Criteria.",
    "decided_by": "judged by {criterion}: {figures}",
    "accuracy_heading": "Task accuracy",
    "accuracy_intro": "{n} labelled images ({source}), every one through every side, {batch} at a time. A change is "
                      "an image whose top-1 class on the target differs from the reference's.",
    "accuracy_unreadable": "Left out as unreadable ({n}): {files}",
    "top1_accuracy": "top-1 accuracy",
    "top5_accuracy": "top-5 accuracy",
    "accuracy_ratio": "top-1 ratio (target / reference)",
    "changed": "changed predictions",
    "right_to_wrong": "right → wrong",
    "wrong_to_right": "wrong → right",
    "wrong_to_wrong": "wrong → wrong",
    "first_changes": "The first changed predictions, in file order:",
    "file": "file",
    "label": "label",
    "reference_class": "reference's class",
    "target_class": "target's class",
    "change": "change",
    "title": "{model} port report",
    "subtitle": "{targets} against the reference {reference}",
    "report_heading": "{model} port report: {targets} against {reference}",
    "colon": ": ",
    "semicolon": "; ",
    "parens": " ({text})",
    "dash": " — ",
    "period": ".",
    "random_banner": RANDOM_WEIGHTS_BANNER,
    "random_detail": "No pretrained checkpoint was found: the model was randomly initialised (seed {seed}). "
                     "The figures show whether the port computes the same numbers, not how accurate the model is. "
                     "The places searched are listed under Weight loading.",
    "partial_detail": "The checkpoint supplied only {share} of the model's parameters; the rest kept their random "
                      "initialisation (seed {seed}). The figures show whether the port computes the same numbers, "
                      "not how accurate the model is.",
    "partial_init": "NO — the checkpoint supplied {share} of the parameters, the rest is random (seed {seed})",
    "partial_yes": "yes — the checkpoint supplied {share} of the parameters",
    "as_given": "as {origin} made them (portproof loaded no checkpoint)",
    "model": "Model",
    "hardware": "Hardware",
    "software": "Software",
    "install_run": "Install and run",
    "install_hint": "or: portproof env --constraints > c.txt; pip install -c c.txt -e .  (holds an installed torch / torch_npu)",
    "weights": "Weight loading",
    "inputs": "Inputs",
    "run_result": "Run result",
    "comparison": "Comparison",
    "layers": "Layer by layer",
    "scoring": "Scoring fields",
    "conclusion": "Conclusion",
    "verdicts": "Verdict",
    "plots_errors": "Error distribution",
    "plots_samples": "Per-sample agreement",
    "plots_latency": "Latency",
    "name": "Name",
    "requested_as": "requested as",
    "family": "Family",
    "hub_repo": "Hub repository",
    "parameters": "Parameters",
    "outputs_compared": "Outputs compared",
    "reference": "Reference",
    "target": "Target",
    "cpu": "CPU",
    "cores": "{cores} logical cores, {threads} torch threads",
    "python": "Python",
    "platform": "Platform",
    "not_installed": "not installed",
    "none": "none",
    "yes": "yes",
    "pretrained_loaded": "Pretrained weights loaded",
    "random_init": "NO — random initialisation (seed {seed})",
    "source": "Source",
    "path": "Path",
    "size": "Size",
    "bytes": "{size:,} bytes",
    "partial": "Partial load allowed: {missing} missing, {unexpected} unexpected keys",
    "searched": "Searched",
    "input_line": "{kind}: {n} samples of shape {shape}, batch size {batch}, seed {seed}",
    "rescue": "Precision rescue",
    "numerics_line": "Numerics settings in force — {side}: {settings}; prepared in {prepare}",
    "rescue_outcome": "rescue of {target}: {outcome}: {reason}",
    "rescue_modules": "kept in fp32 ({n}): {modules}",
    "rescue_target": "rescued target: {spec} (its row above); latency {before} without, {after} with the rescue ({cost})",
    "rescue_cost": "{cost:.2f}x the cost",
    "rescue_apply": "apply it: portproof check --target '{spec}'; in Python: portproof.keep_fp32(model, {names}, {dtype})",
    "rescue_search": "search: {candidates} modules ranked by the layer pass's local error, {evaluations} variants judged",
    "files": "Files",
    "sentences": "Sentences",
    "padding": "Padding",
    "padding_line": "{output}: the positions where {mask} is 0 are left out of its figures",
    "generated": "none (generated tensors)",
    "skipped": "Skipped",
    "side": "side",
    "run_status": "status",
    "note": "Note",
    "output_shapes": "output shapes",
    "mean_latency": "mean latency",
    "median_latency": "median latency",
    "cold_run": "cold run",
    "speedup": "speedup",
    "latency_note": "Latency is per batch of {batch}, after {warmup} warm-up runs, over {iters} synchronised runs; "
                    "speedup is the reference's median over the target's.",
    "no_bench": "Latency was not measured (--no-bench).",
    "raised": "{label} raised an error:",
    "noise_floor": "Noise floor — the fp32 reference's own rel_l2 against a float64 run: {floor}.",
    "target_col": "target",
    "output_col": "output",
    "min_sample_cosine": "min sample cosine",
    "within_1": "within 1%",
    "noise_multiple": "x noise floor",
    "verdict_col": "verdict",
    "full_comparison": "The full comparison, per sample, is in accuracy_compare.log and summary.json.",
    "scoring_intro": "For target {target}, output {output}, against the reference {reference}, "
                     "with the same weights and the same inputs.",
    "field": "field",
    "value": "value",
    "pass_line": "{label}: PASS",
    "fail_line": "{label}: FAIL",
    "error_line": "{label}: ERROR",
    "random_conclusion": "{banner}: these figures say nothing about the pretrained model's accuracy.",
    "criteria": "Criteria",
    "criteria_line": "cosine ≥ {min_cosine}, rel_l2 ≤ {max_rel_l2}, tie-aware top-1 agreement on every sample",
    "started": "Started {started}, {duration:.1f} s",
    "command": "Command",
    "generated_by": "Written by portproof {version} from {source}.",
    "top1": "top-1",
    "tie_aware": "tie-aware",
    "median": "median",
    "fig_hist": "How far each element of the target's output is from the reference's: |target − reference| over "
                "every element, counts on a log scale, one panel per output. The dashed line is the rel_l2 "
                "limit ({max_rel_l2}) times the reference's RMS: an error that size on every element would just "
                "reach the limit. The dotted line is the same for the fp32 reference's own error against float64 "
                "(the noise floor). Elements equal exactly are counted in the legend.",
    "fig_samples": "Agreement sample by sample: 1 − cosine (left) and rel_l2 (right) of each input, per target and "
                   "output, on log scales (lower is better; values below 1e-16 are drawn at 1e-16). Dashed lines: "
                   "the limits (cosine ≥ {min_cosine}, rel_l2 ≤ {max_rel_l2}).",
    "fig_latency": "Latency per batch of {batch} over {iters} timed runs: the box spans the middle half of the runs, "
                   "the line inside is the median (printed on the right), whiskers reach 1.5 × the box, "
                   "dots are outliers.",
    "fig_layers": "Error of every module in execution order: accumulated (each side ran the whole model) and "
                  "local (the target's module fed the reference's input). The vertical line marks the first "
                  "divergent module; dashed lines are the thresholds.",
    "layers_heading": "Layer-by-layer comparison",
    "layers_intro": "Accumulated: each side runs the whole model, module outputs compared. Local: each target module "
                    "is fed the reference's input to it, so its error is its own. A module diverges when its cosine "
                    "falls below {min_cosine}, its rel_l2 exceeds {max_rel_l2}, it turns values NaN/Inf, or it raises.",
    "layers_first": "First divergent module — local: {local}; accumulated: {accumulated}.",
    "layers_none": "no module diverges",
    "layers_worst": "The modules with the largest local error (rel_l2), largest first; every module is in layers.csv "
                    "and layers.json.",
    "module": "module",
    "module_type": "type",
    "local_cosine": "local cosine",
    "local_rel_l2": "local rel_l2",
    "accumulated_cosine": "accumulated cosine",
    "accumulated_rel_l2": "accumulated rel_l2",
    "no_matplotlib": "The figures are missing: matplotlib could not be imported here (pip install matplotlib, then "
                     "portproof report DIR draws them from summary.json).",
}

_ZH = {
    "html_lang": "zh-CN",
    "criteria_heading": "各判定标准下的结论",
    "criteria_intro": "每格为目标端在该判定标准下的结论，以及决定结论的测量值。第一个判定标准 {first} 决定目标端的状态和"
                      "退出码；各标准的公式与出处见 README 的 Criteria 一节。",
    "decided_by": "按 {criterion} 判定：{figures}",
    "accuracy_heading": "任务精度",
    "accuracy_intro": "{n} 张带标签的图像（{source}），每张都在每一端运行，每批 {batch} 张。“预测改变”指目标端的 top-1 类别"
                      "与参考端不同的图像。",
    "accuracy_unreadable": "无法读取、未计入（{n} 张）：{files}",
    "top1_accuracy": "top-1 精度",
    "top5_accuracy": "top-5 精度",
    "accuracy_ratio": "top-1 精度比（目标端 / 参考端）",
    "changed": "预测改变",
    "right_to_wrong": "对 → 错",
    "wrong_to_right": "错 → 对",
    "wrong_to_wrong": "错 → 错",
    "first_changes": "最先改变的预测（按文件顺序）：",
    "file": "文件",
    "label": "标签",
    "reference_class": "参考端类别",
    "target_class": "目标端类别",
    "change": "变化",
    "title": "{model} 适配报告",
    "subtitle": "{targets} 对比参考 {reference}",
    "report_heading": "{model} 适配报告：{targets} 对比 {reference}",
    "colon": "：",
    "semicolon": "；",
    "parens": "（{text}）",
    "dash": " —— ",
    "period": "。",
    "random_banner": f"{RANDOM_WEIGHTS_BANNER}（随机权重：仅检验数值一致性，不能作为评分报告）",
    "random_detail": "未找到预训练权重，模型为随机初始化（种子 {seed}）。以下数据只说明适配后的计算与参考是否一致，"
                     "不代表模型的精度。查找过的位置见“权重加载情况”。",
    "partial_detail": "权重文件只提供了模型 {share} 的参数，其余参数保持随机初始化（种子 {seed}）。以下数据只说明"
                      "适配后的计算与参考是否一致，不代表模型的精度。",
    "partial_init": "否 —— 权重文件只提供了 {share} 的参数，其余为随机初始化（种子 {seed}）",
    "partial_yes": "是 —— 权重文件提供了 {share} 的参数",
    "as_given": "按 {origin} 给出的权重（portproof 未加载权重文件）",
    "model": "模型信息",
    "hardware": "硬件环境",
    "software": "软件环境",
    "install_run": "安装与运行",
    "install_hint": "或：portproof env --constraints > c.txt; pip install -c c.txt -e .（保持已安装的 torch / torch_npu 不变）",
    "weights": "权重加载情况",
    "inputs": "输入数据",
    "run_result": "运行结果",
    "comparison": "精度对比",
    "layers": "逐层对比",
    "scoring": "评分字段",
    "conclusion": "适配结论",
    "verdicts": "判定",
    "plots_errors": "误差分布",
    "plots_samples": "逐样本一致性",
    "plots_latency": "时延",
    "name": "模型名称",
    "requested_as": "命令行写法",
    "family": "模型族",
    "hub_repo": "权重仓库",
    "parameters": "参数量",
    "outputs_compared": "对比的输出",
    "reference": "参考端",
    "target": "目标端",
    "cpu": "CPU",
    "cores": "{cores} 个逻辑核，torch 线程数 {threads}",
    "python": "Python",
    "platform": "操作系统",
    "not_installed": "未安装",
    "none": "无",
    "yes": "是",
    "pretrained_loaded": "是否加载预训练权重",
    "random_init": "否 —— 随机初始化（种子 {seed}）",
    "source": "来源",
    "path": "路径",
    "size": "大小",
    "bytes": "{size:,} 字节",
    "partial": "允许部分加载：缺少 {missing} 个键，多出 {unexpected} 个键",
    "searched": "已查找",
    "input_line": "{kind}：{n} 个样本，形状 {shape}，batch size {batch}，种子 {seed}",
    "rescue": "精度挽救",
    "numerics_line": "生效的数值设置 —— {side}：{settings}；准备耗时 {prepare}",
    "rescue_outcome": "{target} 的精度挽救：{outcome}：{reason}",
    "rescue_modules": "保持 fp32 的模块（{n} 个）：{modules}",
    "rescue_target": "挽救后的目标：{spec}（见上表）；时延 挽救前 {before}，挽救后 {after}（{cost}）",
    "rescue_cost": "代价为 {cost:.2f} 倍",
    "rescue_apply": "用法：portproof check --target '{spec}'；Python 中：portproof.keep_fp32(model, {names}, {dtype})",
    "rescue_search": "搜索：按逐层对比的局部误差排序的 {candidates} 个模块，判定了 {evaluations} 个变体",
    "files": "文件",
    "sentences": "句子",
    "padding": "填充",
    "padding_line": "{output}：{mask} 为 0 的位置（填充）不计入其各项指标",
    "generated": "无（生成的张量）",
    "skipped": "已跳过",
    "side": "运行端",
    "run_status": "运行状态",
    "note": "说明",
    "output_shapes": "输出形状",
    "mean_latency": "平均时延",
    "median_latency": "时延中位数",
    "cold_run": "首次运行",
    "speedup": "加速比",
    "latency_note": "时延按每个 batch（大小 {batch}）计，先预热 {warmup} 次，再同步计时 {iters} 次；"
                    "加速比 = 参考端时延中位数 / 目标端时延中位数。",
    "no_bench": "未测时延（--no-bench）。",
    "raised": "{label} 运行出错：",
    "noise_floor": "噪声底 —— fp32 参考端相对 float64 运行的 rel_l2：{floor}。",
    "target_col": "目标端",
    "output_col": "输出",
    "min_sample_cosine": "最小单样本 cosine",
    "within_1": "相对误差 ≤1% 占比",
    "noise_multiple": "噪声底倍数",
    "verdict_col": "判定",
    "full_comparison": "逐样本的完整对比见 accuracy_compare.log 与 summary.json。",
    "scoring_intro": "以下字段对应目标端 {target} 的输出 {output}，参考端为 {reference}，两端使用相同的权重和输入。",
    "field": "字段",
    "value": "取值",
    "pass_line": "{label}：通过（PASS）",
    "fail_line": "{label}：不通过（FAIL）",
    "error_line": "{label}：运行出错（ERROR）",
    "random_conclusion": "{banner}：以上数据不能说明预训练模型的精度。",
    "criteria": "判定标准",
    "criteria_line": "cosine ≥ {min_cosine}，rel_l2 ≤ {max_rel_l2}，且每个样本的 top-1 一致（考虑近似并列）",
    "started": "开始于 {started}，耗时 {duration:.1f} 秒",
    "command": "命令",
    "generated_by": "由 portproof {version} 根据 {source} 生成。",
    "top1": "top-1",
    "tie_aware": "考虑近似并列",
    "median": "中位数",
    "fig_hist": "目标端输出的每个元素与参考端相差多少：横轴为 |target − reference|，纵轴为元素个数（对数刻度），"
                "每个输出一幅图。虚线为 rel_l2 上限（{max_rel_l2}）乘以参考端输出的均方根：若每个元素的误差都等于它，"
                "rel_l2 恰好达到上限。点线为 fp32 参考端相对 float64 的同一量（噪声底）。完全相等的元素个数写在图例中。",
    "fig_samples": "逐样本一致性：每个输入的 1 − cosine（左）与 rel_l2（右），按目标端和输出分别画出，对数刻度，"
                   "越低越好（小于 1e-16 的值画在 1e-16）。虚线为判定阈值（cosine ≥ {min_cosine}，rel_l2 ≤ {max_rel_l2}）。",
    "fig_latency": "每个 batch（大小 {batch}）的时延，共计时 {iters} 次：箱体为中间一半的运行，箱内竖线为中位数"
                   "（数值标在右侧），须线延伸至箱长的 1.5 倍，圆点为离群值。",
    "fig_layers": "按执行顺序列出每个模块的误差：累积模式（两端各自运行整个模型）与局部模式（目标端模块输入参考端的输入）。"
                  "竖线标出首个发散模块，虚线为阈值。",
    "layers_heading": "逐层对比",
    "layers_intro": "累积模式：两端各自运行整个模型，比较各模块的输出。局部模式：目标端的每个模块输入参考端在该处的输入，"
                    "误差只来自它自己。模块的 cosine 低于 {min_cosine}、rel_l2 超过 {max_rel_l2}、输出出现 NaN/Inf "
                    "或运行出错时，判为发散。",
    "layers_first": "首个发散模块 —— 局部模式：{local}；累积模式：{accumulated}。",
    "layers_none": "没有模块发散",
    "layers_worst": "局部误差（rel_l2）最大的模块，从大到小；全部模块见 layers.csv 与 layers.json。",
    "module": "模块",
    "module_type": "类型",
    "local_cosine": "局部 cosine",
    "local_rel_l2": "局部 rel_l2",
    "accumulated_cosine": "累积 cosine",
    "accumulated_rel_l2": "累积 rel_l2",
    "no_matplotlib": "缺少图表：此环境无法导入 matplotlib（pip install matplotlib 后，运行 portproof report DIR "
                     "即可根据 summary.json 补画）。",
}

_TEXTS = {"en": _EN, "zh": _ZH}


def texts(lang: str) -> dict[str, str]:
    if lang not in _TEXTS:
        raise ValueError(f"unknown language {lang!r}; choose one of: {', '.join(LANGUAGES)}")
    return _TEXTS[lang]


def pretrained_value(weights, t: dict[str, str]) -> str:
    """The "pretrained weights loaded" entry, true to what was loaded: all of a checkpoint, part of one, the
    module's own weights, or none."""
    share = f"{weights.loaded_share:.1%}" if weights.loaded_share is not None else ""
    if weights.source_kind == "as-given":
        return t["as_given"].format(origin=weights.factory)
    if weights.pretrained_used:
        return t["partial_yes"].format(share=share) if weights.loaded_share is not None and weights.loaded_share < 1 else t["yes"]
    if weights.loaded_share is not None:
        return t["partial_init"].format(share=share, seed=weights.random_seed)
    return t["random_init"].format(seed=weights.random_seed)


def random_weights_detail(weights, t: dict[str, str]) -> str:
    """The sentence under the random-weights banner: nothing found, or a checkpoint that supplied too little."""
    if weights.loaded_share is not None:
        return t["partial_detail"].format(share=f"{weights.loaded_share:.1%}", seed=weights.random_seed)
    return t["random_detail"].format(seed=weights.random_seed)


def conclusion_reasons(target, criteria: Criteria, lang: str) -> list[str]:
    """The sentences behind a target's verdict in the conclusion: all of the rules for a PASS, the broken ones
    for a FAIL; led by the deciding criterion's figures when that is not portproof's own rules."""
    t = texts(lang)
    reasons = [sentence for c in target.comparisons for held, sentence in verdict_reasons(c, criteria, lang)
               if not held or target.status != "FAIL" or target.verdict.passed]
    deciding = target.criteria_verdicts[0] if target.criteria_verdicts else None
    if deciding is not None and deciding.criterion != "portproof":
        reasons.insert(0, t["decided_by"].format(criterion=deciding.criterion, figures=criterion_figures(deciding)))
    return reasons


def verdict_reasons(comparison: OutputComparison, criteria: Criteria, lang: str) -> list[tuple[bool, str]]:
    """Each verdict rule applied to one output, as (held, sentence), worded by the rule itself (rules.py)."""
    return rules.reasons(comparison, criteria.rules(), lang)


TEXT_INPUT_KINDS = ("sentences", "text-file")


def input_items(result, t: dict) -> list[tuple[str, str]]:
    """The (label, value) rows about the samples themselves: their sources (sentences for text), and the
    padding each masked output leaves out."""
    inputs = result.inputs
    label = t["sentences"] if inputs.kind in TEXT_INPUT_KINDS else t["files"]
    rows = [(label, ", ".join(inputs.sources) if inputs.sources else t["generated"])]
    rows += [(t["padding"], t["padding_line"].format(output=output, mask=mask))
             for output, mask in result.model.output_masks.items()]
    return rows


TORCH_DTYPES = {"fp16": "torch.float16", "bf16": "torch.bfloat16", "amp-fp16": "None", "amp-bf16": "None"}


def rescue_lines(result, t: dict) -> list[str]:
    """What a precision rescue found, as lines (terminal, report.md, report.html); [] without one."""
    found = result.rescue
    if found is None:
        return []
    lines = [t["rescue_outcome"].format(target=found.target, outcome=found.outcome, reason=found.reason)]
    if found.modules:
        spec = found.rescued_target or ""
        dtype = spec.partition("/")[2].partition("+")[0]
        cost = t["rescue_cost"].format(cost=found.latency_cost) if found.latency_cost else "n/a"
        lines += [t["rescue_modules"].format(n=len(found.modules), modules=", ".join(found.modules)),
                  t["rescue_target"].format(spec=spec, before=milliseconds(found.latency_before_ms),
                                            after=milliseconds(found.latency_after_ms),
                                            cost=cost),
                  t["rescue_apply"].format(spec=spec, names=list(found.modules), dtype=TORCH_DTYPES.get(dtype, dtype))]
    if found.candidates:
        lines.append(t["rescue_search"].format(candidates=found.candidates, evaluations=found.evaluations))
    return lines


def numerics_lines(result, t: dict) -> list[str]:
    """One line per side: the numerics settings its description recorded, and its prepare time (copy, cast,
    export or compile)."""
    sides = [(f"{t['reference']} {result.reference.label}", result.reference.description)]
    sides += [(f"{t['target']} {target.label}", target.description) for target in result.targets]
    lines = []
    for side, description in sides:
        settings = (description or {}).get("numerics") or {}
        prepare = (description or {}).get("prepare_s")
        if settings or prepare is not None:
            shown = ", ".join(f"{key}={value}" for key, value in settings.items()) or "n/a"
            lines.append(t["numerics_line"].format(side=side, settings=shown,
                                                   prepare=f"{prepare:.2f} s" if prepare is not None else "n/a"))
    return lines
