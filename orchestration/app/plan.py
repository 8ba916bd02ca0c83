"""`shiftlake study`'s plan: everything that can be checked before any model work, and what the study will do.

Paths and layouts found, tokenizers matching the base, the problems read, the prompt template rendered on
the first problem, the verifiers importable, the lake writable. Each problem found is one line naming what
is wrong and the fix; the study starts only when there is none.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from compute.checkpoints import discover_checkpoints, has_folder, has_weights, not_ready, tokenizer_folder
from compute.settings import Settings


@dataclass
class Plan:
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)  # checkpoint keys that can be analysed now


def study_plan(settings: Settings) -> Plan:
    """`settings`: what the runs will read (inputs, prompts, stops, sampling, cross grid, lake)."""
    from transformers import AutoTokenizer

    from compute.storage import LakeUnavailable, filesystem, with_retries
    from compute.models import TokenizerMismatch, check_same_tokenizer, local_copy
    from compute.problems import load_problems
    from compute.verifiers import verifier_for

    plan = Plan()
    base_tok = None
    if has_weights(settings.base_model):
        base_tok = AutoTokenizer.from_pretrained(local_copy(settings.base_model))
        plan.lines.append(f"base model   {settings.base_model} (vocabulary {len(base_tok)})")
    else:
        plan.errors.append(f"BASE_MODEL={settings.base_model}: no Hugging Face model there (config.json and weights); "
                           "point it at the model the RL run started from")

    try:
        found = discover_checkpoints(settings.checkpoints_url, settings.sft_checkpoints_url)
        plan.lines.append(f"checkpoints  {settings.checkpoints_url}: {len(found)} found"
                          + (f" (with the SFT run's in {settings.sft_checkpoints_url})" if settings.sft_checkpoints_url else ""))
        if settings.sft_checkpoints_url and not has_folder(settings.sft_checkpoints_url):
            plan.lines.append(f"  SFT_CHECKPOINTS_URL={settings.sft_checkpoints_url} does not exist yet: its checkpoints "
                              "are analysed once the SFT trainer writes them")
    except (FileNotFoundError, ValueError) as e:
        plan.errors.append(str(e))
        found = None
    for c in found or []:
        why = not_ready(c)
        if why is None and base_tok is not None and (folder := tokenizer_folder(c)):
            try:
                check_same_tokenizer(settings.base_model, base_tok, c.uri, AutoTokenizer.from_pretrained(local_copy(folder)))
            except TokenizerMismatch as e:
                plan.errors.append(str(e))
                why = "tokenizer differs from the base's"
        if why is None:
            plan.ready.append(c.key)
        plan.lines.append(f"  {c.key:<24} {c.layout:<10} " + ("ready" if why is None else f"not analysed: {why}"))
    if found and not plan.ready:
        plan.errors.append(f"no checkpoint under {settings.checkpoints_url} can be analysed now (reasons above)")
    elif found == []:
        plan.errors.append(f"no checkpoint under {settings.checkpoints_url}: expected checkpoint-<step>/, "
                           "global_step_<n>/actor/, global_step<n>_hf/ or model folders (README: Checkpoint layouts)")

    problems = None
    try:
        problems = load_problems(settings.problems_url, settings.max_problems)
        counts = problems.group_by("dataset", maintain_order=True).len()
        plan.lines.append(f"problems     {settings.problems_url}: " +
                          ", ".join(f"{d} {n}" for d, n in counts.iter_rows()))
    except (OSError, ValueError) as e:
        plan.errors.append(str(e))

    try:
        prompting = settings.prompts()
        plan.lines.append(f"template     {prompting.template.setting}" +
                          (f"; stop strings {list(prompting.stop_strings)}" if prompting.stop_strings else ""))
        if base_tok is not None and problems is not None and problems.height:
            text, ids = prompting.template.render(base_tok, problems["prompt"][0])
            shown = text if len(text) <= 160 else text[:157] + "..."
            plan.lines.append(f"  first prompt ({len(ids)} tokens): {shown!r}")
    except ValueError as e:
        plan.errors.append(str(e))

    if problems is not None:
        for dataset in problems["dataset"].unique(maintain_order=True):
            try:
                verifier = verifier_for(settings.verifier, dataset)
                if verifier.prepare is not None:
                    verifier.prepare()  # imports it: a missing package fails here, not after the sampling
                plan.lines.append(f"verifier     {dataset}: {verifier.name} {verifier.version}")
            except (ImportError, ValueError) as e:
                plan.errors.append(f"verifier for {dataset}: {e}")

    try:
        grid = settings.cross_grid()
        plan.lines.append(f"sampling     {settings.samples_per_problem} per problem, temperature {settings.temperature}, "
                          f"top_p {settings.top_p}, up to {settings.max_new_tokens} new tokens; cross-sampling "
                          f"{len(grid.rules())} rules" + (" + random controls" if grid.random_control else ""))
    except ValueError as e:
        plan.errors.append(str(e))

    probe = f"{settings.lake_url}/.shiftlake-probe-{uuid.uuid4().hex[:8]}"
    fs = filesystem(settings.lake_url)

    def write_probe() -> None:
        fs.makedirs(settings.lake_url, exist_ok=True)
        fs.pipe_file(probe, b"probe")
        fs.rm(probe)

    try:
        with_retries(settings.lake_url, "writing a probe file", write_probe)
        plan.lines.append(f"lake         {settings.lake_url} (writable)")
    except LakeUnavailable as e:  # no or refused credentials, a store that does not answer: its own message
        plan.errors.append(str(e))
    except Exception as e:  # noqa: BLE001 - s3fs raises botocore's errors, not OSError
        plan.errors.append(f"LAKE_URL={settings.lake_url} is not writable ({type(e).__name__}: {e}); point it at a "
                           "folder or bucket you can write to")
    return plan
