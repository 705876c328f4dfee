"""The GPU suite's throughput stage: images/s of the fast path and the plain baseline for each
workload, batch size and compile setting (benchmarks/throughput.py takes each measurement),
and AutoAttack's time on an untrained model."""
from __future__ import annotations

import time
from types import SimpleNamespace

import torch

import throughput as TP            # benchmarks/throughput.py: one measurement per call
from suite_core import EPOCH_IMAGES, GUESS, Results, Stage

WORKLOADS = ("standard", "pgd_at", "clead", "pgd20_eval")


def throughput_sizes(dry: bool, budget_s: float) -> dict:
    """Model, batch sizes, timed batches, AutoAttack images and compile backend for the budget."""
    if dry:
        return dict(arch="small_cnn", batch_sizes=[2, 4], batches=1, aa_n=4, workers=0, backend="eager")
    batches = int(min(20, max(3, 20 * budget_s / 150)))    # 20 timed batches (+20 warm-up) at >= 150 s
    return dict(arch="preact_resnet18", batch_sizes=[128, 512], batches=batches, aa_n=1000, workers=8,
                backend="inductor")


def throughput_plan(sizes: dict) -> list[tuple]:
    """The measurements, most important first: (batch, compile, workload, path)."""
    first = [(b, False, w, p) for b in sizes["batch_sizes"] for w in WORKLOADS for p in ("fast", "baseline")]
    compiled = [(b, True, w, "fast") for b in sizes["batch_sizes"] for w in ("pgd_at", "clead", "standard")]
    return first + [("autoattack",)] + compiled


def item_name(item: tuple) -> str:
    """'b128+compile pgd_at fast', or 'autoattack'."""
    if item[0] == "autoattack":
        return "autoattack"
    batch, compile_, workload, path = item
    return f"b{batch}{'+compile' * compile_} {workload} {path}"


def estimate_measurement(item: tuple, seconds: dict, dry: bool) -> float:
    """Seconds one measurement is expected to take, from those already taken."""
    if item[0] == "autoattack":
        return 5 if dry else 30
    batch, compile_, workload, path = item
    same = [s for (b, c, w, p), s in ((k, v) for k, v in seconds.items() if k[0] != "autoattack")
            if w == workload and b == batch and not c]
    base = max(same) if same else max(list(seconds.values()) or [1.0])
    return base + (GUESS["compile_s"] if compile_ and not dry else 0)


def synthetic_images(sizes: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """x (n, 3, 32, 32) uint8 and y (n,) in 0..9, seeded: enough for every timed batch and AutoAttack."""
    gen = torch.Generator().manual_seed(0)
    n = max(sizes["batches"] * max(sizes["batch_sizes"]), sizes["aa_n"])
    return (torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen),
            torch.randint(0, 10, (n,), generator=gen))


def measure(item: tuple, sizes: dict, x, y, device) -> float:
    """Images/s of one (batch, compile, workload, path) measurement (benchmarks/throughput.py)."""
    batch, compile_, workload, path = item
    args = SimpleNamespace(arch=sizes["arch"], batch_size=batch, batches=sizes["batches"], compile=compile_,
                           compile_backend=sizes["backend"], workers=sizes["workers"])
    fast = path == "fast"
    if workload == "pgd20_eval":
        return TP.eval_rate(fast, args, x, y, device)
    return TP.train_rate(workload, fast, args, x, y, device)


def record_rate(suite, item: tuple, sizes: dict, x, y) -> None:
    """Measure one item and add its row (images/s, projected epoch seconds, peak memory)."""
    t = time.time()
    if suite.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rate = measure(item, sizes, x, y, suite.device)
    row = {"batch": item[0], "compile": item[1], "workload": item[2], "path": item[3],
           "images_per_s": rate, "epoch_s": EPOCH_IMAGES / rate, "wall_s": time.time() - t}
    if suite.device.type == "cuda":
        row["peak_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    suite.res.data["throughput"]["rows"].append(row)
    summarize_throughput(suite.res, sizes)
    print(f"[gpu_suite] {item_name(item)}: {rate:.0f} img/s, {EPOCH_IMAGES / rate:.1f} s per 50,000-image epoch")


def record_autoattack(suite, sizes: dict, x, y) -> None:
    """Seconds of standard AutoAttack on sizes['aa_n'] images of an untrained model."""
    s = TP.autoattack_seconds(SimpleNamespace(arch=sizes["arch"], aa_n=sizes["aa_n"]), x, y, suite.device)
    suite.res.set(("throughput", "autoattack_standard_untrained"), {
        "images": sizes["aa_n"], "seconds": s, "note": "untrained model, labels = its own "
        "predictions: a lower bound of the time on a trained model"})
    print(f"[gpu_suite] AutoAttack (standard), {sizes['aa_n']} images, untrained model: {s:.1f} s")


def rate_table(rate: dict) -> dict:
    """{'batch128' or 'batch128_compile': {workload: {path: img/s, 'ratio_fast_vs_baseline'}}}."""
    table = {}
    for (b, c, w, p), r in rate.items():
        entry = table.setdefault(f"batch{b}" + ("_compile" if c else ""), {}).setdefault(w, {})
        entry[p] = r
        base = rate.get((b, False, w, "baseline"))
        if p == "fast" and base:
            entry["ratio_fast_vs_baseline"] = r / base
    return table


def summarize_throughput(res: Results, sizes: dict) -> None:
    """The top-level keys: epoch_s and ratio_fast_vs_baseline at the first (smallest) batch size,
    fast path without compile; also the same for every batch size and with compile."""
    rate = {(r["batch"], r["compile"], r["workload"], r["path"]): r["images_per_s"]
            for r in res.data["throughput"]["rows"]}
    b0 = sizes["batch_sizes"][0]
    fast = {w: rate[(b0, False, w, "fast")] for w in WORKLOADS if (b0, False, w, "fast") in rate}
    ratio = {w: r / rate[(b0, False, w, "baseline")] for w, r in fast.items() if (b0, False, w, "baseline") in rate}
    res.data.update(epoch_s={w: EPOCH_IMAGES / r for w, r in fast.items()}, ratio_fast_vs_baseline=ratio,
                    epoch_s_batch=b0)
    res.data["throughput"]["images_per_s"] = rate_table(rate)
    res.save()


def measured_rates(res: Results) -> dict:
    """Training images/s per objective (fast path, first batch size, no compile) from an earlier
    throughput stage in this --out, with TRADES, FGSM-AT and clead_released derived from them."""
    rows = res.get(("throughput", "rows"), [])
    b0 = min((r["batch"] for r in rows), default=None)
    first = [r for r in rows if r["batch"] == b0 and not r["compile"]]
    rate = {r["workload"]: r["images_per_s"] for r in first if r["path"] == "fast"}
    base = {r["workload"]: r["images_per_s"] for r in first if r["path"] == "baseline"}
    out = {}
    if "pgd_at" in rate:
        out.update(pgd_at=rate["pgd_at"], trades=0.9 * rate["pgd_at"])
    if "standard" in rate:
        out.update(standard=rate["standard"], fgsm_at=rate["standard"] / 2)
    if "clead" in rate:
        out.update(clead=rate["clead"], clead_released=rate["clead"])
    if "pgd_at" in rate and "pgd_at" in base:
        out["plain_factor"] = rate["pgd_at"] / base["pgd_at"]
    return out


def stage_throughput(suite, st: Stage) -> None:
    """Every planned measurement that still fits the stage's budget, each written at once."""
    sizes = throughput_sizes(suite.dry, st.budget_s)
    plan = throughput_plan(sizes)
    st.note("plan", {**sizes, "measurements": len(plan)})
    print(f"[gpu_suite] throughput plan: {sizes['arch']}, batches {sizes['batch_sizes']}, "
          f"{sizes['batches']} timed batches after as many warm-up ones, {len(plan)} measurements "
          f"(compiled ones last, skipped when the budget is spent), AutoAttack on {sizes['aa_n']} images")
    x, y = synthetic_images(sizes)
    suite.res.set(("throughput",), {"arch": sizes["arch"], "batches": sizes["batches"], "epoch_images": EPOCH_IMAGES,
                                    "data": "synthetic uint8 3x32x32, 10 classes", "rows": []})
    seconds = {}
    for item in plan:
        est = estimate_measurement(item, seconds, suite.dry)
        if seconds and not st.fits(est):
            st.skip(item_name(item), est)
            continue
        t = time.time()
        try:
            record_autoattack(suite, sizes, x, y) if item[0] == "autoattack" else record_rate(suite, item, sizes, x, y)
        except Exception as err:          # a failing measurement is a finding; the others still run
            print(f"[gpu_suite] {item_name(item)} FAILED: {err!r}")
            st.error(f"{item_name(item)}: {err!r}")
        seconds[item] = time.time() - t
