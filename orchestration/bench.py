"""`shiftlake bench [--only paired,cross,demo]`: throughput of the study's two model-bound stages and the
demo's wall time per stage.

paired  tokens/s of the teacher-forced paired pass (compute.paired)
cross   tokens/s of lockstep cross-sampling (compute.cross_sampling, one KV cache per model) against two
        references on the same prompts and seeds: one model's `generate` (KV cache, no second model) and
        the same lockstep with a decoder that re-encodes the whole prefix every step (no KV cache)
demo    the demo's seconds per asset on a fresh temporary lake and Dagster instance
s3      the demo's wall time with the lake in a local folder and on S3 (the server in AWS_ENDPOINT_URL, else
        a temporary SeaweedFS), one after the other, and the js_percentiles query's latency on both lakes
checks  the data-quality checks' time as a share of their assets' own time, on a fresh demo lake
sensor  a real daemon on a temporary instance with the first toy checkpoint analysed: seconds from the
        second checkpoint's folder landing to its summaries being queryable (split into detection by the
        sensor, queue and launch, analysis), and how many materialisations the first one got meanwhile

Models: the toy world's base and last RL checkpoint, and a Qwen2.5-1.5B-shaped pair with random weights
(same code paths; few tokens on CPU).
"""

from __future__ import annotations

import os
import tempfile
import time

import torch
from transformers import AutoModelForCausalLM, Qwen2Config

from compute.cross_sampling import SwitchRule, cross_sample
from compute.models import auto_device, auto_dtype, load_model
from compute.paired import PairedParams, paired_metrics
from compute.reference import ReencodingDecoder
from compute.sampling import SamplingParams, left_pad
from compute.toyworld.world import build_world

QWEN25_15B = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                  num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                  rope_theta=1e6, tie_word_embeddings=True)


def _throughput(base, rl, prompts, responses, pad_id, params, repeats: int) -> float:
    paired_metrics(base, rl, prompts[:1], responses[:1], pad_id, params)  # warm-up
    n = sum(map(len, responses))
    t = time.perf_counter()
    for _ in range(repeats):
        paired_metrics(base, rl, prompts, responses, pad_id, params)
    return n * repeats / (time.perf_counter() - t)


def _toy_pair():
    world = build_world()
    base = load_model(world / "base")
    rl = load_model(sorted((world / "checkpoints").iterdir(), key=lambda p: int(p.name.split("-")[1]))[-1])
    return base.model, rl.model


def _qwen_pair(device):
    """Two random-weight models, initialised on `device` (seconds on a GPU rather than minutes on its CPU)."""
    config = Qwen2Config(**QWEN25_15B)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        with torch.device(device):
            models.append(AutoModelForCausalLM.from_config(config, dtype=auto_dtype(device)).eval())
    return models


def _params_b(model) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{n / 1e9:.2f}B" if n > 1e8 else f"{n:,}"


def bench_paired_toy(base, rl) -> None:
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(1, 19, (11,), generator=g).tolist() for _ in range(256)]
    responses = [torch.randint(1, 19, (36,), generator=g).tolist() for _ in range(256)]
    tps = _throughput(base, rl, prompts, responses, 0, PairedParams(64, 2048), repeats=3)
    print(f"paired pass, toy pair ({_params_b(base)} params each, {base.device}): {tps:,.0f} tokens/s "
          f"over {256 * 36:,} tokens")


def bench_paired_qwen(base, rl, n_seqs: int, prompt_len: int, response_len: int) -> None:
    vocab = base.config.vocab_size
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, vocab, (prompt_len,), generator=g).tolist() for _ in range(n_seqs)]
    responses = [torch.randint(0, vocab, (response_len,), generator=g).tolist() for _ in range(n_seqs)]
    chunk = 256 if base.device.type == "cpu" else 2048
    tps = _throughput(base, rl, prompts, responses, 0, PairedParams(n_seqs, chunk), repeats=2)
    print(f"paired pass, Qwen2.5-1.5B-shaped random pair ({_params_b(base)} params each, {base.device}, "
          f"{base.dtype}): {tps:,.1f} tokens/s over {n_seqs}x{response_len} response tokens "
          f"(prompt {prompt_len}, vocab chunk {chunk})")


def _timed(fn) -> tuple[object, float]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def bench_cross(label: str, base, rl, prompts: list[list[int]], params: SamplingParams, eos_id: int,
                pad_id: int, naive: bool = True) -> None:
    """Lockstep cross-sampling (forward, js > 0.1) vs one-model `generate` vs re-encoding lockstep."""
    seeds = list(range(len(prompts)))
    rules = [SwitchRule("forward", "js", 0.1)] * len(prompts)
    warm = SamplingParams(max_new_tokens=2)  # same batch shape, so kernels and allocations are warm
    cross_sample(base, rl, prompts, seeds, rules, warm, eos_id, pad_id)
    fast, t_fast = _timed(lambda: cross_sample(base, rl, prompts, seeds, rules, params, eos_id, pad_id))
    n_fast = sum(len(f.response_ids) for f in fast)
    ids, mask = left_pad(prompts, pad_id, base.device)
    gen_kwargs = dict(do_sample=True, max_new_tokens=params.max_new_tokens, temperature=params.temperature,
                      top_p=params.top_p, top_k=0, eos_token_id=eos_id, pad_token_id=pad_id)
    with torch.inference_mode():
        base.generate(input_ids=ids, attention_mask=mask, **{**gen_kwargs, "max_new_tokens": 2})
        out, t_gen = _timed(lambda: base.generate(input_ids=ids, attention_mask=mask, **gen_kwargs))
    new = out[:, ids.shape[1]:].tolist()
    n_gen = sum(row.index(eos_id) + 1 if eos_id in row else len(row) for row in new)
    line = (f"cross-sampling, {label}, {len(prompts)} rows x <= {params.max_new_tokens} new tokens: lockstep "
            f"(2 models, KV caches) {n_fast / t_fast:,.1f} tokens/s; one-model generate {n_gen / t_gen:,.1f} "
            f"tokens/s ({t_fast / n_fast / (t_gen / n_gen):.2f}x the lockstep's time per token)")
    if naive:
        slow, t_slow = _timed(lambda: cross_sample(base, rl, prompts, seeds, rules, params, eos_id, pad_id,
                                                   decoder=ReencodingDecoder))
        same = [s.response_ids for s in slow] == [f.response_ids for f in fast]
        line += (f"; re-encoding lockstep {n_fast / t_slow:,.1f} tokens/s (lockstep {t_slow / t_fast:.1f}x "
                 f"faster; same tokens: {'yes' if same else 'NO'})")
    print(line)


def bench_demo(checks: bool = False) -> None:
    from orchestration.demo import run_demo

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LAKE_URL"] = os.path.join(tmp, "lake")
        os.environ["DAGSTER_HOME"] = os.path.join(tmp, "dagster")
        timings = run_demo(log=lambda *_: None)
        print("demo wall time per stage (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
        if checks:
            _check_share(os.environ["LAKE_URL"], timings)


ASSETS_OF = {"problems": ["problems"], "rollouts": ["base_rollouts", "rollouts"], "token_shifts": ["token_shifts"],
             "scores": ["base_scores", "scores"], "cross_samples": ["cross_samples"], "cross_scores": ["cross_scores"]}


def _check_share(lake_url: str, timings: dict[str, float]) -> None:
    """Check seconds per table (run again over the lake) against the assets' step seconds minus the checks
    they ran inside them."""
    from compute.quality import check_lake

    seconds: dict[str, float] = {}
    for _, result in check_lake(lake_url):
        seconds[result.table] = seconds.get(result.table, 0.0) + result.metadata["seconds"]
    parts, total_check, total_asset = [], 0.0, 0.0
    for table, check_s in seconds.items():
        step_s = sum(timings.get(f"asset {a}", 0.0) for a in ASSETS_OF[table])
        own = max(step_s - check_s, 1e-9)
        parts.append(f"{table} {check_s:.2f} s / {own:.2f} s = {check_s / own:.0%}")
        total_check, total_asset = total_check + check_s, total_asset + own
    print("data-quality checks vs their assets' own time: " + "; ".join(parts)
          + f"; all checked assets {total_check:.1f} s / {total_asset:.1f} s = {total_check / total_asset:.1%}")


def bench_sensor(interval_s: int = 5) -> None:
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import dagster as dg

    from orchestration.live import materialisation_counts, materialised_at, start_daemon, stop, wait_for

    world = build_world()
    first, second = sorted((world / "checkpoints").iterdir(), key=lambda p: int(p.name.split("-")[1]))[:2]
    keys = [f"rl-step-{int(p.name.split('-')[1]):06d}" for p in (first, second)]
    job_assets = ["checkpoints", "rollouts", "token_shifts", "scores", "summaries", "cross_samples", "cross_scores",
                  "cross_summaries"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "checkpoints").mkdir()
        shutil.copytree(first, tmp / "checkpoints" / first.name)
        env = {**os.environ, "DAGSTER_HOME": str(tmp / "dagster"), "LAKE_URL": str(tmp / "lake"),
               "CHECKPOINTS_URL": str(tmp / "checkpoints"), "SHIFTLAKE_SENSOR_INTERVAL_S": str(interval_s)}
        subprocess.run([sys.executable, "-m", "orchestration.cli", "demo"], env=env, check=True, capture_output=True)
        saved, os.environ["DAGSTER_HOME"] = os.environ.get("DAGSTER_HOME"), env["DAGSTER_HOME"]
        daemon = start_daemon(env, log_file=tmp / "daemon.log")
        try:
            with dg.DagsterInstance.get() as instance:
                before = materialisation_counts(instance, job_assets, keys[0])
                time.sleep(interval_s)
                landed = time.time()
                shutil.copytree(second, tmp / "checkpoints" / second.name)
                done = wait_for(lambda: all(materialised_at(instance, a, keys[1]) for a in ("summaries", "cross_summaries"))
                                and max(materialised_at(instance, a, keys[1]) for a in ("summaries", "cross_summaries")),
                                timeout=900, what=f"the analysis of {keys[1]}")
                run = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": keys[1]}))[0]
                record = instance.get_run_record_by_id(run.run_id)
                after = materialisation_counts(instance, job_assets, keys[0])
        finally:
            stop(daemon)
            if saved is None:
                os.environ.pop("DAGSTER_HOME", None)
            else:
                os.environ["DAGSTER_HOME"] = saved
    created, started = record.create_timestamp.timestamp(), record.start_time
    print(f"sensor latency, toy world, {keys[1]} landing with {keys[0]} analysed (sensor interval {interval_s} s): "
          f"summaries queryable after {done - landed:.1f} s = detection {created - landed:.1f} s (two sensor "
          f"ticks: seen, then unchanged) + queue and launch {started - created:.1f} s + run {done - started:.1f} s; "
          f"without detection {done - created:.1f} s. {keys[0]} re-materialised meanwhile: "
          f"{sum(after.values()) - sum(before.values())} asset partitions")


def bench_s3(repeats: int = 5) -> None:
    import statistics
    import subprocess
    import sys
    from pathlib import Path

    from compute import lakesql

    server = None
    if not os.environ.get("AWS_ENDPOINT_URL"):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from infra import s3local

        state = Path(tempfile.mkdtemp(prefix="shiftlake-s3-"))
        server = s3local.start(state=state, identities=state / "identities.json")
        os.environ.update({k: v for k, v in server.env.items() if k != "LAKE_URL"})
    build_world()
    walls, latency = {}, {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            lakes = {"local": os.path.join(tmp, "lake"), "s3": f"s3://shiftlake/bench-{os.getpid()}"}
            for name, url in lakes.items():
                env = {**os.environ, "LAKE_URL": url, "DAGSTER_HOME": os.path.join(tmp, f"dagster-{name}")}
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "orchestration.cli", "demo"], env=env, check=True,
                               capture_output=True)
                walls[name] = time.perf_counter() - t
            query = lakesql.query_text("js_percentiles")
            for name, url in lakes.items():
                lakesql.run(query, url)  # warm: imports, filesystem objects
                times = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    lakesql.run(query, url)
                    times.append(time.perf_counter() - t)
                latency[name] = statistics.median(times)
    finally:
        if server is not None:
            s3local.stop_process(server.process)
    print(f"demo wall time (toy world cached, every asset of 4 checkpoints): local {walls['local']:.1f} s, "
          f"S3 ({os.environ['AWS_ENDPOINT_URL']}) {walls['s3']:.1f} s, ratio S3/local {walls['s3'] / walls['local']:.2f}")
    print(f"js_percentiles query, median of {repeats} (views built on each connection): local "
          f"{latency['local'] * 1000:.0f} ms, S3 {latency['s3'] * 1000:.0f} ms")


PARTS = ("paired", "cross", "demo", "checks", "sensor", "s3")


def main(only: tuple[str, ...] = PARTS) -> None:
    torch.set_num_threads(int(os.environ.get("SHIFTLAKE_BENCH_THREADS", torch.get_num_threads())))
    device = auto_device()
    cpu = device.type == "cpu"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}")
    if "paired" in only or "cross" in only:
        base, rl = _toy_pair()
        if "paired" in only:
            bench_paired_toy(base, rl)
        if "cross" in only:
            from compute.toyworld.task import prompt_for
            from compute.toyworld.tokenizer import build_tokenizer

            tok = build_tokenizer()
            g = torch.Generator().manual_seed(0)
            pairs = torch.randint(0, 10_000, (256, 2), generator=g).tolist()
            prompts = [tok.encode(prompt_for(a, b), add_special_tokens=False) for a, b in pairs]
            bench_cross("toy pair", base, rl, prompts, SamplingParams(max_new_tokens=48),
                        tok.eos_token_id, tok.pad_token_id)
        t = time.perf_counter()
        base, rl = _qwen_pair(device)
        print(f"Qwen2.5-1.5B-shaped random pair: init {time.perf_counter() - t:.0f} s")
        if "paired" in only:
            bench_paired_qwen(base, rl, n_seqs=2 if cpu else 16, prompt_len=32 if cpu else 256,
                              response_len=32 if cpu else 512)
        if "cross" in only:
            rows, prompt_len, new = (2, 16, 8) if cpu else (64, 256, 128)
            g = torch.Generator().manual_seed(0)
            prompts = [torch.randint(0, base.config.vocab_size, (prompt_len,), generator=g).tolist()
                       for _ in range(rows)]
            eos = base.config.vocab_size - 1  # random weights: rows almost always decode all `new` tokens
            bench_cross(f"Qwen2.5-1.5B-shaped random pair ({device}, {base.dtype}, prompt {prompt_len})", base,
                        rl, prompts, SamplingParams(max_new_tokens=new), eos_id=eos, pad_id=0)
        del base, rl
    if "demo" in only or "checks" in only:
        bench_demo(checks="checks" in only)
    if "sensor" in only:
        bench_sensor()
    if "s3" in only:
        bench_s3()


if __name__ == "__main__":
    main()
