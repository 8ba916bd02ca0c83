"""What fits: parameters read from safetensors headers, a clear refusal before loading, rows chosen per device."""

import pytest
import torch

from compute import sizing
from compute.models import load_model
from tests.compute.test_paired import tiny_model


def test_parameters_come_from_the_safetensors_headers(tmp_path):
    model = tiny_model(1)
    model.save_pretrained(tmp_path)
    stored = {n: p for n, p in model.state_dict().items() if n != "lm_head.weight"}  # tied: saved once
    assert sizing.stored_parameters(tmp_path) == sum(p.numel() for p in stored.values())
    assert sizing.stored_parameters(tmp_path / "nowhere") == 0


def test_a_model_too_big_for_the_device_is_refused_before_loading(tmp_path, monkeypatch):
    model = tiny_model(1)
    model.save_pretrained(tmp_path)
    monkeypatch.setattr(sizing, "free_bytes", lambda device: 1000)
    with pytest.raises(MemoryError, match=r"has 0\.00B parameters: .* GiB in float32, but this machine's memory has "
                                          r"0\.0 GiB free"):
        sizing.check_fits(tmp_path, torch.device("cpu"), torch.float32)
    loaded = []
    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", lambda *a, **k: loaded.append(a))
    with pytest.raises(MemoryError):
        load_model(tmp_path, torch.device("cpu"))
    assert loaded == []  # refused before any weight was read


def test_rows_per_batch_on_cpu_grow_as_models_shrink(monkeypatch):
    toy = tiny_model(1)
    assert sizing.rows_per_batch([toy, toy], 11, 48) == sizing.MAX_ROWS["cpu"]
    big = torch.nn.Module()
    big.weight = torch.nn.Parameter(torch.zeros(2 ** 26))  # 256 MiB of float32
    big.config = toy.config
    assert sizing.rows_per_batch([big], 11, 48) == 2 ** 33 // 2 ** 28
    assert sizing.rows_per_batch([big] * 4, 11, 48) == 16  # never fewer than 16 on a CPU


def test_kv_bytes_follow_the_config():
    model = tiny_model(1)  # 2 layers, 4 kv heads of 8 dims, float32
    assert sizing.kv_bytes_per_position(model) == 2 * 2 * 4 * 8 * 4


def test_only_the_files_from_pretrained_loads_are_counted(tmp_path):
    """Mistral's releases ship consolidated.safetensors beside the sharded Hugging Face files: counting it would
    double the model and refuse one that fits."""
    import shutil

    model = tiny_model(1)
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    loaded = sizing.stored_parameters(tmp_path)
    assert (tmp_path / "model.safetensors.index.json").exists() and loaded > 0
    shutil.copy(next(tmp_path.glob("model-*.safetensors")), tmp_path / "consolidated.safetensors")
    assert sizing.stored_parameters(tmp_path) == loaded


def test_dynamic_rope_scaling_keeps_decoding_out_of_cuda_graphs():
    from transformers import LlamaConfig

    from compute.decoders import _dynamic_rope

    assert _dynamic_rope(LlamaConfig(rope_scaling={"rope_type": "dynamic", "factor": 2.0}))
    assert not _dynamic_rope(LlamaConfig())
    assert not _dynamic_rope(LlamaConfig(rope_scaling={"rope_type": "linear", "factor": 2.0}))


def test_memory_rows_fit_every_models_kv_and_vocabulary_work_in_the_headroom(monkeypatch):
    model = tiny_model(1)
    per_row = 2 * (sizing.kv_bytes_per_position(model) * (11 + 48)
                   + sizing.VOCAB_TEMPORARIES * 4 * model.config.vocab_size)
    monkeypatch.setattr(sizing, "free_bytes", lambda device: 1000 * per_row)
    assert sizing.memory_rows([model, model], 11, 48, headroom=0.5) == 500


def test_a_process_takes_its_share_of_torchs_threads(monkeypatch):
    monkeypatch.setattr(sizing, "_DEFAULT_THREADS", [])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(8)
        assert [sizing.share_threads(n) for n in (2, 3, 16, 0, 1)] == [4, 2, 1, 8, 8]
        assert sizing.share_threads(4, threads=3) == 3 == torch.get_num_threads()
        assert sizing.share_threads(1) == 8 == torch.get_num_threads()  # the default it first found
    finally:
        torch.set_num_threads(before)
