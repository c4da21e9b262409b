"""Device and dtype per machine, and why: float16 overflows Gemma's activations, so a GPU without native
bfloat16 (a T4) runs Gemma in float32; ZeroGPU loads on the CPU and moves the model on the loading thread."""

from __future__ import annotations

import threading

import pytest
import torch
from transformers import AutoModelForCausalLM

from inspectors.engine import devices, loading
from inspectors.settings import Settings


@pytest.fixture(scope="module")
def loud_gemma2(tiny_dirs):
    """The tiny Gemma 2 with one residual dimension as large as Gemma's real outliers grow (tens of thousands
    after the sqrt(d_model) embedding scale), in float32 and in float16."""
    models = {}
    for dtype in (torch.float32, torch.float16):
        model = AutoModelForCausalLM.from_pretrained(tiny_dirs["gemma2"], dtype=dtype).eval()
        with torch.no_grad():
            model.get_input_embeddings().weight[:, 0] = 1.2e4  # x sqrt(64) = 96,000 > float16's 65,504
        models[dtype] = model
    return models


def test_float16_overflows_gemma_where_float32_does_not(loud_gemma2):
    ids = torch.tensor([[2, 105, 2364, 107, 9259, 993]])
    with torch.no_grad():
        exact = loud_gemma2[torch.float32](ids).logits
        half = loud_gemma2[torch.float16](ids).logits
    assert torch.isfinite(exact).all()
    assert not torch.isfinite(half).all()  # inf / NaN: no probability to show


@pytest.mark.parametrize(
    ("device", "native", "config", "configured", "expected"),
    [
        ("cpu", False, None, "auto", torch.float32),
        ("cpu", False, "gemma-3-270m", "auto", torch.float32),  # small: exact probabilities
        ("cpu", False, "gemma-2-2b-it", "auto", torch.bfloat16),  # 2.6B: half the memory on a CPU
        ("cuda", True, None, "auto", torch.bfloat16),  # an A100, an H200 slice on ZeroGPU
        ("cuda", False, "gemma-2-2b-it", "auto", torch.float32),  # a T4 running Gemma 2
        ("cuda", False, "gemma-3-270m", "auto", torch.float32),
        ("cuda", False, "llama", "auto", torch.float16),  # a T4 running another architecture
        ("cuda", False, "gemma-2-2b-it", "float16", torch.float16),  # asked for explicitly
    ],
)
def test_dtype_policy(monkeypatch, device, native, config, configured, expected):
    from transformers import Gemma3TextConfig, LlamaConfig

    from bench.shapes import gemma2_2b_it_config

    configs = {
        None: None,
        "gemma-2-2b-it": gemma2_2b_it_config(256_000),
        "gemma-3-270m": Gemma3TextConfig(
            vocab_size=262_144,
            hidden_size=640,
            intermediate_size=2048,
            num_hidden_layers=18,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=256,
        ),
        "llama": LlamaConfig(),
    }
    monkeypatch.setattr(devices, "native_bf16", lambda d: native)
    dtype, why = devices.resolve_dtype(Settings(dtype=configured), torch.device(device), configs[config])
    assert dtype == expected and why
    assert devices.needs_config(Settings(dtype=configured), torch.device(device)) == (
        configured == "auto" and (device == "cpu" or not native)
    )


def test_parameter_counts_from_configs():
    from bench.shapes import gemma2_2b_it_config

    assert devices.parameter_count(gemma2_2b_it_config(256_000)) == pytest.approx(2.61e9, rel=0.02)


def test_native_bfloat16_ignores_emulation(monkeypatch):
    seen = {}

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        seen["including_emulation"] = including_emulation
        return including_emulation  # a T4: "supported" only through emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert devices.native_bf16(torch.device("cuda")) is False
    assert seen == {"including_emulation": False}
    assert devices.native_bf16(torch.device("cpu")) is False


def test_zero_gpu_loads_on_the_cpu_then_moves_on_this_thread(tiny_dirs, monkeypatch, tmp_path):
    seen: dict = {}
    real = AutoModelForCausalLM.from_pretrained

    def spy(source, **kwargs):
        seen["kwargs"] = kwargs
        model = real(source, **kwargs)
        model.to = lambda device: seen.update(to=(str(device), threading.current_thread().name)) or model
        return model

    monkeypatch.setattr(loading, "on_zero_gpu", lambda: True)
    monkeypatch.setattr(loading, "resolve_device", lambda settings: torch.device("cuda"))
    monkeypatch.setattr(loading, "needs_config", lambda settings, device: False)
    monkeypatch.setattr(loading, "resolve_dtype", lambda s, d, m=None: (torch.float32, "test"))
    monkeypatch.setattr(loading.AutoModelForCausalLM, "from_pretrained", spy)
    settings = Settings(model_id=str(tiny_dirs["gemma2"]), cache_dir=tmp_path)  # its own registry key
    loading.load_model(settings=settings)
    assert "device_map" not in seen["kwargs"]  # transformers would copy to the device in worker threads
    assert seen["to"] == ("cuda", threading.current_thread().name)


def test_model_card_says_why_this_dtype(tiny_lm):
    from inspectors.views.model import model_card

    assert "float32 on cpu (the CPU default: exact probabilities)" in model_card(tiny_lm)
