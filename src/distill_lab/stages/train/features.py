"""Rows -> tokenized training examples, with the overlong policy and the label audit.

Every row is rendered and masked (``distill_lab.students.chat``), then checked by ``audit_row`` before
any training starts. Overlong rows (``data.overlong``) are dropped, truncated or an error; each
outcome is counted in ``FeatureStats`` and reported in the train summary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from distill_lab.stages.train.config import DataConfig
from distill_lab.stages.train.packing import Example
from distill_lab.students.chat import IGNORE, RenderError, TokenizedConversation, tokenize_conversation


class AuditError(ValueError):
    """A row's labels break an invariant; the message names the row."""


@dataclass
class FeatureStats:
    rows: int = 0
    kept: int = 0
    dropped_overlong: int = 0
    truncated: int = 0
    dropped_truncated_empty: int = 0
    supervised_tokens: int = 0
    masked_tokens: int = 0
    max_row_tokens: int = 0
    answer_rows: int = 0  # rows whose final answer is marked (for the answer-token loss)
    reasons: dict[str, int] = field(default_factory=dict)
    per_family: dict[str, dict[str, int]] = field(default_factory=dict)  # dose_per_family of what trains

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def audit_row(tc: TokenizedConversation, messages: list[dict[str, Any]], eot_id: int, where: str,
              *, truncated: bool = False, max_length: int | None = None) -> None:
    """Raise ``AuditError`` naming ``where`` unless every label invariant holds.

    Checked independently of how the masks were made: (1) some token is supervised; (2) labels equal
    input ids wherever supervised; (3) no supervised token overlaps the text of a system/user/tool
    message (located by searching each message's content in the rendered text, in order); (4) every
    assistant turn ends in a supervised end-of-turn token (unless the row was truncated); (5) the row
    fits ``max_length``.
    """
    ids, labels, offsets = tc.input_ids, tc.labels, tc.offsets
    if len(ids) != len(labels):
        raise AuditError(f"{where}: {len(ids)} input ids but {len(labels)} labels")
    if max_length is not None and len(ids) > max_length:
        raise AuditError(f"{where}: {len(ids)} tokens > data.max_length={max_length}")
    sup = [t for t, lab in enumerate(labels) if lab != IGNORE]
    if not sup:
        raise AuditError(f"{where}: every label is masked (no supervised token)")
    bad = [t for t in sup if labels[t] != ids[t]]
    if bad:
        raise AuditError(f"{where}: label differs from input id at supervised positions {bad[:5]}")
    text = tc.rendered.text
    cursor = 0
    for i, m in enumerate(messages):
        content = m.get("content") or ""
        if m.get("role") == "assistant" or not content:
            continue
        at = text.find(content, cursor)
        if at < 0:
            continue  # the template rewrote it; the assistant-span checks still hold
        cursor = at + len(content)
        for t in sup:
            if offsets[t][1] > offsets[t][0] and _overlaps(offsets[t], (at, at + len(content))):
                raise AuditError(f"{where}: {m.get('role')} text of message {i} is supervised (token {t})")
    if not truncated:
        n_turns = len(tc.rendered.assistant_spans)
        sup_eot = sum(1 for t in sup if ids[t] == eot_id)
        if sup_eot < n_turns:
            raise AuditError(f"{where}: {n_turns} assistant turn(s) but {sup_eot} supervised end-of-turn "
                             f"token(s) (id {eot_id}): the student would not learn to stop")
        for s, e in tc.rendered.assistant_spans:
            last = max((t for t in sup if s <= offsets[t][0] < e), default=None)
            if last is None or ids[last] != eot_id:
                raise AuditError(f"{where}: the assistant turn at chars [{s}, {e}) does not end with a "
                                 f"supervised end-of-turn token")


def answer_start(tc: TokenizedConversation, messages: list[dict[str, Any]]) -> int | None:
    """Index of the first token of the final answer: the last assistant turn's ``content`` (what follows
    its thinking block), located in that turn's rendered span; the answer's tokens run from there to the
    end of the turn, end-of-turn token included. None when the row has no answer text or the template
    rewrote it beyond recognition (the row then adds nothing to the answer loss)."""
    spans = tc.rendered.assistant_spans
    last = next((m for m in reversed(messages) if m.get("role") == "assistant"), None)
    content = ((last or {}).get("content") or "").strip()
    if not spans or not content:
        return None
    s, e = spans[-1]
    at = tc.rendered.text.rfind(content, s, e)
    if at < 0:
        return None
    # the first token that reaches into the answer (a token may carry the whitespace before it)
    return next((t for t, (a, b) in enumerate(tc.offsets) if b > at and b > a), None)


def end_of_turn_id(tokenizer) -> int:
    """Id of the token that ends an assistant turn (``<|im_end|>`` in ChatML, else eos)."""
    tid = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid is not None:
        return tid
    assert tokenizer.eos_token_id is not None, "tokenizer has neither <|im_end|> nor an eos token"
    return int(tokenizer.eos_token_id)


def dose_per_family(examples: list[Example], rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Training dose per task family (``row["task"]``): the rows that train and their supervised tokens
    (labels not masked: the thinking and answer the loss is taken on, end-of-turn included)."""
    task = {str(r.get("id", n)): str(r.get("task") or "unknown") for n, r in enumerate(rows)}
    out: dict[str, dict[str, int]] = {}
    for e in examples:
        d = out.setdefault(task.get(e.row_id, "unknown"), {"rows": 0, "supervised_tokens": 0})
        d["rows"] += 1
        d["supervised_tokens"] += sum(lab != IGNORE for lab in e.labels)
    return dict(sorted(out.items()))


def build_examples(rows: list[dict[str, Any]], tokenizer, data: DataConfig, *,
                   source: str = "dataset") -> tuple[list[Example], FeatureStats]:
    """Tokenize, mask, apply the overlong policy and audit every row."""
    eot = end_of_turn_id(tokenizer)
    stats = FeatureStats()
    out: list[Example] = []
    for n, row in enumerate(rows):
        rid = str(row.get("id", n))
        where = f"{source} row {n} (id={rid})"
        stats.rows += 1
        try:
            tc = tokenize_conversation(tokenizer, row["messages"], enable_thinking=data.enable_thinking,
                                       keep_past_reasoning=data.keep_past_reasoning, where=where)
        except (RenderError, KeyError, TypeError) as e:
            raise AuditError(f"{where}: cannot render: {e}") from e
        truncated = False
        if len(tc.input_ids) > data.max_length:
            if data.overlong == "error":
                raise AuditError(f"{where}: {len(tc.input_ids)} tokens > data.max_length={data.max_length} "
                                 f"(data.overlong=error; use drop or truncate)")
            if data.overlong == "drop":
                stats.dropped_overlong += 1
                continue
            k = data.max_length
            tc = TokenizedConversation(tc.input_ids[:k], tc.labels[:k], tc.offsets[:k], tc.rendered)
            truncated = True
            if tc.num_supervised == 0:
                stats.dropped_truncated_empty += 1
                continue
            stats.truncated += 1
        audit_row(tc, row["messages"], eot, where, truncated=truncated, max_length=data.max_length)
        stats.kept += 1
        stats.supervised_tokens += tc.num_supervised
        stats.masked_tokens += len(tc.labels) - tc.num_supervised
        stats.max_row_tokens = max(stats.max_row_tokens, len(tc.input_ids))
        start = answer_start(tc, row["messages"])
        stats.answer_rows += start is not None and start < len(tc.input_ids)
        out.append(Example(row_id=rid, input_ids=tc.input_ids, labels=tc.labels, answer_start=start))
    if not out:
        raise AuditError(f"{source}: no trainable rows left out of {stats.rows} "
                         f"(dropped overlong: {stats.dropped_overlong}, data.max_length={data.max_length})")
    return out, stats
