"""manifest.json redaction: secrets go, settings that merely mention tokens stay."""

from __future__ import annotations

from distill_lab.artifacts.manifest import redact


def test_secret_keys_and_values_are_redacted_but_token_counts_are_not():
    cfg = {"teacher": {"max_tokens": 24000, "effort_budgets": {"high": 16000}, "api_key": "sk-live-abcdefgh",
                       "api_key_env": "ANTHROPIC_API_KEY", "base_url": "http://user:sk-secret-0123456789@host"},
           "eval": {"max_new_tokens": 256}, "summary": {"supervised_tokens": 1234},
           "headers": {"Authorization": "Bearer xyz", "hf_token": "hf_abc"}}
    out = redact(cfg, secrets=["sk-secret-0123456789"])
    assert out["teacher"]["max_tokens"] == 24000 and out["eval"]["max_new_tokens"] == 256
    assert out["summary"]["supervised_tokens"] == 1234 and out["teacher"]["effort_budgets"] == {"high": 16000}
    assert out["teacher"]["api_key"] == "***" and out["headers"] == {"Authorization": "***", "hf_token": "***"}
    assert out["teacher"]["api_key_env"] == "ANTHROPIC_API_KEY"  # the variable's name is not a secret
    assert out["teacher"]["base_url"] == "http://user:***@host"
