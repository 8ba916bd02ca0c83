"""Settings from the environment as the README documents them, through the study resource a run uses."""

import subprocess
import sys

import pytest

from compute.paths import REPO_ROOT
from compute.settings import from_env


def _grid(environ: dict, monkeypatch):
    for k, v in environ.items():
        monkeypatch.setenv(k, v)
    return from_env().cross_grid()


def test_an_empty_eps_variable_turns_its_criterion_off(monkeypatch):
    """README: an empty SHIFTLAKE_CROSS_EPS_* turns a criterion off. It used to be read as unset, so the
    default grid of that criterion ran anyway."""
    grid = _grid({"SHIFTLAKE_CROSS_EPS_DELTA_LOGP": "", "SHIFTLAKE_CROSS_EPS_ENTROPY": ""}, monkeypatch)
    assert [c for c, _ in grid.eps] == ["js"]
    assert {r.criterion for r in grid.rules()} == {"js"}
    assert grid.random_control


def test_js_off_takes_the_random_control_with_it(monkeypatch):
    """The random control matches the js runs' budgets: with js off there is nothing to match."""
    grid = _grid({"SHIFTLAKE_CROSS_EPS_JS": "", "SHIFTLAKE_CROSS_EPS_ENTROPY": "0.5"}, monkeypatch)
    assert dict(grid.eps) == {"delta_logp": (0.5, 0.75, 1.0, 2.0), "entropy": (0.5,)}
    assert not grid.random_control


def test_every_grid_empty_is_one_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="every cross-sampling eps grid is empty.*SHIFTLAKE_CROSS_EPS_JS=0.01"):
        _grid({f"SHIFTLAKE_CROSS_EPS_{c}": "" for c in ("JS", "DELTA_LOGP", "ENTROPY")}, monkeypatch)


def test_other_empty_variables_still_mean_unset():
    """An empty BASE_MODEL or SHIFTLAKE_SEED is a variable left blank, not a value."""
    s = from_env({"SHIFTLAKE_SEED": "", "BASE_MODEL": "", "SHIFTLAKE_CROSS_EPS_JS": "0.1,inf"})
    assert s.seed == 1234 and s.base_model == ""
    assert s.cross_eps_js == "0.1,inf"
    with pytest.raises(ValueError, match=r"^BASE_MODEL is not set: point it at the study's base_model"):
        s.required("base_model")


def test_the_engine_has_no_inputs_and_the_application_points_unset_ones_at_the_toy_world():
    """The engine knows no toy world: its inputs are empty until set. The application fills each one left
    unset with the toy world's folder of it, and leaves a set one alone."""
    from compute.toyworld.world import world_dir
    from orchestration.app.toy import toy_inputs

    assert from_env({}).base_model == from_env({}).checkpoints_url == from_env({}).problems_url == ""
    environ = {"CHECKPOINTS_URL": "/runs/grpo"}
    assert toy_inputs(environ)
    assert environ == {"CHECKPOINTS_URL": "/runs/grpo", "BASE_MODEL": str(world_dir() / "base"),
                       "PROBLEMS_URL": str(world_dir() / "problems.jsonl")}
    assert from_env(environ).required("base_model") == str(world_dir() / "base")
    assert not toy_inputs(environ)  # nothing left unset


def test_pointing_at_the_toy_world_imports_neither_torch_nor_transformers():
    """`shiftlake status` and `shiftlake ui` point unset inputs at the toy world's folders before anything else;
    finding the folders took torch and transformers with it, about 7 of `shiftlake status`'s 11 s on 2 cores. The
    settings the assets record (prompts, advantage weighting: what status compares for staleness) are checked
    without them too: `compute.advantages`, which knows the weighting's kinds, imports torch where it computes."""
    code = ("import sys; from orchestration.app.toy import toy_inputs; from compute.settings import from_env; "
            "environ = {'SHIFTLAKE_TOY_SFT': '1', 'SHIFTLAKE_TOY_AB': '1'}; toy_inputs(environ); "
            "from_env(environ).recorded(); print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"


def test_the_toy_sft_run_and_ab_are_inputs_only_when_asked_for_and_the_ab_only_once_built(tmp_path, monkeypatch):
    """SHIFTLAKE_TOY_SFT points SFT_CHECKPOINTS_URL at the toy SFT run's folder (no checkpoint until it is built);
    SHIFTLAKE_TOY_AB points AB_CURVES_URL at the toy A/B's curves only once they exist (`demo --ab` builds them)."""
    from compute.checkpoints import discover_checkpoints
    from compute.toyworld.world import world_dir
    from orchestration.app.toy import toy_inputs

    monkeypatch.setenv("SHIFTLAKE_CACHE", str(tmp_path))  # a machine with no toy world built
    environ = {}
    assert toy_inputs(environ) and "SFT_CHECKPOINTS_URL" not in environ and "AB_CURVES_URL" not in environ
    environ = {"SHIFTLAKE_TOY_SFT": "1", "SHIFTLAKE_TOY_AB": "1"}
    assert toy_inputs(environ)
    assert environ["SFT_CHECKPOINTS_URL"] == str(world_dir() / "sft_checkpoints") and "AB_CURVES_URL" not in environ
    (world_dir() / "checkpoints").mkdir(parents=True)
    assert discover_checkpoints(environ["CHECKPOINTS_URL"], environ["SFT_CHECKPOINTS_URL"]) == []


@pytest.mark.parametrize("argv, base, message", [
    (["demo", "--sft", "--live"], "", "they do not apply to --live"),
    (["demo", "--ab"], "/models/base",
     "unset BASE_MODEL (a study of your own takes SFT_CHECKPOINTS_URL and AB_CURVES_URL instead)"),
])
def test_the_demos_toy_study_flags_refuse_what_they_cannot_do(argv, base, message, monkeypatch, capsys):
    from orchestration.app.cli import main

    for variable in ("BASE_MODEL", "CHECKPOINTS_URL", "PROBLEMS_URL", "SHIFTLAKE_TOY_SFT", "SHIFTLAKE_TOY_AB"):
        monkeypatch.delenv(variable, raising=False)
    if base:
        monkeypatch.setenv("BASE_MODEL", base)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
