"""Eval backends: stop sequences that cannot fire inside the thinking (hf stopping criterion and the
post-hoc cut), and the openai_compat backend over real HTTP against a local OpenAI-compatible fake
(request parameters, reasoning_content, truncation, retries of 429/5xx/dropped connections, fatal 404)."""

from __future__ import annotations

import pytest

from distill_lab.stages.evaluate.backends import (
    BackendError,
    HFBackend,
    OpenAICompatBackend,
    Sampling,
    cut_at_stop,
    prompt_opens_thinking,
)
from distill_lab.stages.evaluate.suites.config import EvalBackendConfig
from tests.bench_support import ANSWER, MEMORIZED, THINKING, bench_memorizer_dir
from tests.conftest import compose_config
from tests.fake_api.bench_server import BenchFake, State
from tests.fake_api.common import Faults


def test_cut_at_stop_never_inside_the_thinking():
    text = "<think>\nEND inside\n</think>\n\nAnswer 1. END tail"
    assert cut_at_stop(text, ["END"]) == ("<think>\nEND inside\n</think>\n\nAnswer 1. ", True)
    assert cut_at_stop("<think>\nEND but never closed", ["END"]) == ("<think>\nEND but never closed", False)
    # a template that pre-fills <think>: no tag in the output, still thinking until </think>
    assert cut_at_stop("END while thinking", ["END"], opened=True) == ("END while thinking", False)
    assert cut_at_stop("plain answer END more", ["END"]) == ("plain answer ", True)
    assert cut_at_stop("x", []) == ("x", False)
    assert prompt_opens_thinking("<|im_start|>assistant\n<think>\n") and not prompt_opens_thinking("assistant\n")


@pytest.fixture
def one_thread():
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices on a shared 2-core machine: one thread is faster
    yield
    torch.set_num_threads(old)


def test_hf_stop_fires_after_the_thinking_and_saves_tokens(one_thread):
    from distill_lab.students import load_student

    cfg = compose_config(["student=tiny"], stage="eval")
    model, tok = load_student(cfg.student, adapter_dir=bench_memorizer_dir(cfg.student))
    be = HFBackend(model, tok, batch_size=4, bf16=False, progress=False, label="student")
    msgs = [[{"role": "user", "content": "Compute $\\frac{3}{6}$ in lowest terms.\nPlease reason step by step, and "
                                         "put your final answer within \\boxed{}."}]]
    plain = be.generate(msgs, Sampling(n=1, greedy=True, temperature=0, top_p=1, max_new_tokens=80, seed=0))[0][0]
    assert plain.text == MEMORIZED and not plain.truncated  # the memorized answer, ended by end of turn
    stopped = be.generate(msgs, Sampling(n=1, greedy=True, temperature=0, top_p=1, max_new_tokens=80, seed=0,
                                         stop=("END",)))[0][0]
    # "END" inside the thinking did not stop it; the one in the answer did, and the text is cut there
    assert stopped.text == f"<think>\n{THINKING}\n</think>\n\n{ANSWER.split('END')[0]}"
    assert stopped.n_tokens < plain.n_tokens and not stopped.truncated
    short = be.generate(msgs, Sampling(n=1, greedy=True, temperature=0, top_p=1, max_new_tokens=6, seed=0))[0][0]
    assert short.truncated and short.n_tokens == 6
    two = be.generate(msgs, Sampling(n=3, greedy=False, temperature=0.7, top_p=0.95, max_new_tokens=80, seed=1))
    assert len(two[0]) == 3


def _backend(url: str, **kw) -> OpenAICompatBackend:
    cfg = EvalBackendConfig(name="openai_compat", base_url=f"{url}/v1", student_model="student",
                            retry_base_s=0.01, retry_cap_s=0.05, **kw)
    return OpenAICompatBackend(cfg, "student")


@pytest.fixture
def fake():
    def reply(model, prompt, body):
        if "long" in prompt:
            return "thinking " * 400, "The answer is $\\boxed{7}$.", None  # cut by max_tokens inside the thinking
        return "Half of it.", "The answer is $\\boxed{0.5}$. END trailing", None

    srv = BenchFake(State(reply=reply, models=("student", "base"))).start()
    yield srv
    srv.stop()


def test_openai_compat_requests_and_outputs(fake):
    be = _backend(fake.url)
    msgs = [[{"role": "user", "content": "half?"}], [{"role": "user", "content": "long one"}]]
    out = be.generate(msgs, Sampling(n=1, greedy=True, temperature=0.6, top_p=0.95, max_new_tokens=100, seed=0,
                                     stop=("END",)))
    a, b = out[0][0], out[1][0]
    assert a.text == "<think>\nHalf of it.\n</think>\n\nThe answer is $\\boxed{0.5}$. " and not a.truncated
    assert b.truncated and "</think>" not in b.text and b.n_tokens == 100  # never closed: no answer to read
    bodies = sorted(fake.state.requests, key=lambda r: r["messages"][0]["content"])
    assert all(r["temperature"] == 0.0 and r["max_tokens"] == 100 and r["model"] == "student" for r in bodies)
    assert all("stop" not in r for r in bodies)  # a server-side stop would fire inside the thinking
    assert all(r["chat_template_kwargs"] == {"enable_thinking": True} for r in bodies)
    fake.state.requests.clear()
    out = be.generate(msgs[:1], Sampling(n=4, greedy=False, temperature=0.6, top_p=0.95, max_new_tokens=50, seed=10))
    assert len(out[0]) == 4
    assert sorted(r["seed"] for r in fake.state.requests) == [10, 11, 12, 13]
    assert {(r["temperature"], r["top_p"]) for r in fake.state.requests} == {(0.6, 0.95)}


def test_openai_compat_retries_transient_errors(fake):
    fake.state.faults = Faults(rate_limit=0.15, server_error=0.1, overloaded=0.05, drop=0.05, retry_after_s=0.02, seed=3)
    be = _backend(fake.url, concurrency=4, max_retries=8)
    msgs = [[{"role": "user", "content": f"half {i}?"}] for i in range(12)]
    out = be.generate(msgs, Sampling(n=1, greedy=True, temperature=0, top_p=1, max_new_tokens=100, seed=0))
    assert all(o[0].text.endswith("$\\boxed{0.5}$. END trailing") for o in out)
    assert be.retries > 0 and be.sent == 12 + be.retries


def test_openai_compat_fatal_errors_name_url_and_model(fake):
    cfg = EvalBackendConfig(name="openai_compat", base_url=f"{fake.url}/v1", student_model="nope", max_retries=2)
    with pytest.raises(BackendError, match=rf"{fake.url}/v1 model 'nope'.*404.*not retryable"):
        OpenAICompatBackend(cfg, "nope").generate([[{"role": "user", "content": "x"}]],
                                                  Sampling(n=1, greedy=True, temperature=0, top_p=1,
                                                           max_new_tokens=8, seed=0))
    fake.state.faults = Faults(server_error=1.0)
    be = _backend(fake.url, max_retries=2)
    with pytest.raises(BackendError, match="retries exhausted after 3 attempt"):
        be.generate([[{"role": "user", "content": "x"}]],
                    Sampling(n=1, greedy=True, temperature=0, top_p=1, max_new_tokens=8, seed=0))
