"""Without a GPU, optimizer steps must not probe for one (it cost ~50 us a step on a CPU)."""

from __future__ import annotations

import os

import pytest
import torch

from argen.training.gpu_probe import skip_gpu_probe_without_gpu


def adam_step() -> None:
    p = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([p], lr=0.1)
    p.sum().backward()
    optimizer.step()


@pytest.mark.skipif(
    torch.cuda.is_available() or not torch.backends.cuda.is_built(),
    reason="the probe happens in CUDA builds of PyTorch on machines without a GPU",
)
def test_no_gpu_probe_during_steps_once_skipped(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # what importing Lightning sets
    probes = []
    real = torch.cuda._raw_device_count_nvml  # loads the NVML library and asks it

    def counting_probe() -> int:
        probes.append(1)
        return real()

    monkeypatch.setattr(torch.cuda, "_raw_device_count_nvml", counting_probe)
    adam_step()
    assert probes, "expected PyTorch to probe NVML at an Adam step (has PyTorch changed?)"
    assert skip_gpu_probe_without_gpu() is True
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    probes.clear()
    adam_step()
    assert probes == []
    assert not torch.cuda.is_available()


def test_a_user_setting_is_kept(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert skip_gpu_probe_without_gpu() is False
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
