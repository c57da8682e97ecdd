"""How the Hugging Face engine runs a model on CPU; neither setting changes a result.

* ``reuse_freed_memory()``: glibc serves every allocation of >= 32 MiB with fresh mmap pages
  and unmaps them on free, so each decoding step page-faults its [rows, vocab] logits in
  anew (400 x 49152 fp32 = 75 MiB: ~30 ms on the 2-core VM, as long as the subtraction that
  reads them).  Raising the mmap and trim thresholds lets such tensors reuse freed heap.
* ``cpu_inference(model, blocked_head)``: a context for one forward pass in which SDPA
  attends grouped key/value heads in place under a padding mask (transformers otherwise
  copies them to every query head) and, with ``blocked_head``, the LM head projects in blocks
  of ``VOCAB_BLOCK`` vocabulary rows: alone, one [tokens, vocab] GEMM runs at 60-130 GFLOP/s
  on the VM, 1024-column blocks at 90-150 (smollm2-135m's head, 75-400 tokens).  Every
  output element is the same dot product.  The engine blocks decoding steps, where that
  measured ~5 % faster in whole sampling runs; in scoring passes it did not pay.
* ``row_logsumexp(x)``: each row's logsumexp and max over the last dimension, computed
  ``LSE_ROWS`` rows at a time so a block of logits stays in cache between its max, exp and
  sum (``torch.logsumexp`` runs each of them over the whole [rows, vocab] tensor and
  allocates a copy of it: 18.5 against 6.7 ms for 300 x 49,152 fp32 logits on the VM).
  The same operations in the same order per row: equal to ``torch.logsumexp`` bit for bit
  in the test.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from typing import Iterator

import torch
import torch.nn.functional as F

VOCAB_BLOCK = 1024  # vocabulary rows per LM-head GEMM on CPU
LSE_ROWS = 8  # rows per block of row_logsumexp (8 x 49,152 fp32 logits: 1.5 MiB)
HEAP_LIMIT = 1 << 30  # bytes: allocations below this reuse freed heap memory instead of mmap
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)
FORCE_GQA = "TRANSFORMERS_SDPA_FORCE_GQA"  # transformers' switch for enable_gqa SDPA calls under a mask

_heap_reused = False


def reuse_freed_memory() -> bool:
    """Keep freed memory below HEAP_LIMIT bytes in the process heap (glibc on Linux; once per
    process).  Returns whether the setting is on."""
    global _heap_reused
    if not _heap_reused and sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL("libc.so.6").mallopt
        except (OSError, AttributeError):  # not glibc
            return False
        _heap_reused = bool(mallopt(M_MMAP_THRESHOLD, HEAP_LIMIT)) and bool(mallopt(M_TRIM_THRESHOLD, HEAP_LIMIT))
    return _heap_reused


def blocked_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, block: int) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` as GEMMs over ``block`` output rows of ``weight`` [out, in];
    x [..., in] -> [..., out].  Each block is written into the one output tensor (no second
    [tokens, out] copy: 157 MiB at 800 sampling rows of a 49,152-token vocabulary)."""
    out = x.new_empty(*x.shape[:-1], weight.shape[0])
    for i in range(0, weight.shape[0], block):
        out[..., i:i + block] = F.linear(x, weight[i:i + block], None if bias is None else bias[i:i + block])
    return out


def row_logsumexp(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logsumexp, max) of each row of ``x`` [N, V] over V -> two [N, 1] tensors (-inf rows: -inf, -inf).
    On CPU in blocks of ``LSE_ROWS`` rows; elsewhere ``torch.logsumexp`` and ``amax``."""
    top = x.amax(-1, keepdim=True)
    if x.device.type != "cpu":
        return torch.logsumexp(x, -1, keepdim=True), top
    shift = top.masked_fill(torch.isinf(top), 0.0)  # as torch.logsumexp: an all -inf or +inf row stays itself
    total = torch.empty_like(top)
    for i in range(0, x.shape[0], LSE_ROWS):
        torch.sum(torch.sub(x[i:i + LSE_ROWS], shift[i:i + LSE_ROWS]).exp_(), -1, keepdim=True,
                  out=total[i:i + LSE_ROWS])
    return total.log_().add_(shift), top


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


@contextlib.contextmanager
def _blocked_head(model: torch.nn.Module) -> Iterator[None]:
    """The model's LM head (a plain ``nn.Linear`` whose forward nobody has wrapped) projects in
    VOCAB_BLOCK blocks; its hooks (a ``hidden_transform``) still run."""
    head = model.get_output_embeddings()
    if type(head) is not torch.nn.Linear or "forward" in vars(head) or head.out_features <= VOCAB_BLOCK:
        yield
        return
    head.forward = lambda x: blocked_linear(x, head.weight, head.bias, VOCAB_BLOCK)
    try:
        yield
    finally:
        del head.forward


@contextlib.contextmanager
def cpu_inference(model: torch.nn.Module, blocked_head: bool = False) -> Iterator[None]:
    with _env(FORCE_GQA, "1"), (_blocked_head(model) if blocked_head else contextlib.nullcontext()):
        yield
