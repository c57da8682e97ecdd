"""Key/value cache layers whose buffers are allocated once for every position a decode will write.

A growing ``DynamicLayer`` concatenates each step's keys and values onto a new tensor (a
copy of the whole cache per step); ``PreallocatedLayer`` writes them in place into buffers
with room for every new token, its ``keys``/``values`` views of the filled part.
"""
from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """A growing cache layer whose keys and values [B, heads, T, head dim] are views of
    buffers with ``room`` more positions: ``update`` writes in place instead of concatenating."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int):
        super().__init__()
        n = keys.shape[-2]
        self._buffers = []
        for t in (keys, values):
            buf = t.new_empty(*t.shape[:-2], n + room, t.shape[-1])
            buf[..., :n, :] = t
            self._buffers.append(buf)
        self.keys, self.values = (b[..., :n, :] for b in self._buffers)
        self.device, self.is_initialized = keys.device, True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        n, m = self.keys.shape[-2], key_states.shape[-2]
        if n + m > self._buffers[0].shape[-2]:
            raise RuntimeError(f"preallocated cache full: {n} + {m} > {self._buffers[0].shape[-2]} positions")
        for buf, new in zip(self._buffers, (key_states, value_states)):
            buf[..., n:n + m, :] = new
        self.keys, self.values = (b[..., :n + m, :] for b in self._buffers)
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Rows ``indices`` (one per row, e.g. beam origins), reordered in place in the buffers."""
        for buf in self._buffers:
            buf.copy_(buf.index_select(0, indices))
