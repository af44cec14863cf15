"""BERT passes over packed tokens: no compute on padding where compute grows with tokens.

A padded batch of texts of mixed lengths spends the bulk of a pass (the query, key,
value, output and feed-forward projections: ~99% of MiniLM's multiply-adds at 20
tokens) on padding. Here every text's tokens are concatenated into one ``[tokens, dim]``
matrix that the projections, layer norms and activations run on; only the attention
scores, which mix tokens of one text, see a padded ``[texts, heads, longest, head_dim]``
view, scattered in and gathered out by index. The idea is ByteTransformer's (Zhai et
al. 2023, "ByteTransformer: A High-Performance Transformer Boosted for
Variable-Length Inputs"), in plain torch on the model's own submodules, so
fine-tuned, LoRA-merged and int8-quantised linear layers run unchanged.

The result equals the padded pass of the same model (the rows of real tokens are the
same sums); padded positions of the returned states are zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F


def supports_packing(model: torch.nn.Module) -> bool:
    """True for a BERT-style encoder (``BertModel`` and relatives with absolute positions)
    whose layers this module knows how to run; anything else takes the padded pass."""
    config = getattr(model, "config", None)
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if config is None or layers is None or not hasattr(model, "embeddings"):
        return False
    if getattr(config, "is_decoder", False) or getattr(config, "position_embedding_type", "absolute") != "absolute":
        return False
    if getattr(config, "chunk_size_feed_forward", 0):
        return False
    needed = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output",
              "intermediate", "output")
    names = {name for name, _ in layers[0].named_modules()} if len(layers) else set()
    return all(name in names for name in needed)


def packed_hidden_states(
    model: torch.nn.Module, ids: Sequence[Sequence[int]], type_ids: Sequence[Sequence[int]] | None = None,
    all_layers: bool = False,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Hidden states ``[texts, longest, dim]`` (the last, or the embeddings' and every
    layer's with ``all_layers``) and the attention mask ``[texts, longest]`` for token ids
    of texts of any lengths (each at least one token), computed on packed tokens."""
    device = model.embeddings.word_embeddings.weight.device
    lengths = torch.tensor([len(row) for row in ids], device=device)
    count, longest = len(ids), int(lengths.max())
    mask = torch.arange(longest, device=device)[None, :] < lengths[:, None]
    # Where each packed token sits in the padded [texts x longest] grid, row-major.
    grid = mask.reshape(-1).nonzero().squeeze(1)
    positions = grid % longest
    flat_ids = torch.tensor([token for row in ids for token in row], device=device)
    flat_types = (torch.tensor([token for row in type_ids for token in row], device=device)
                  if type_ids is not None else torch.zeros_like(flat_ids))
    hidden = model.embeddings(input_ids=flat_ids[None], token_type_ids=flat_types[None],
                              position_ids=positions[None])[0]
    key_mask = mask[:, None, None, :]

    def padded(rows: torch.Tensor) -> torch.Tensor:
        out = rows.new_zeros(count * longest, rows.shape[-1])
        out.index_copy_(0, grid, rows)
        return out.view(count, longest, rows.shape[-1])

    states = [padded(hidden)] if all_layers else []
    for layer in model.encoder.layer:
        hidden = _layer(layer, hidden, padded, grid, key_mask)
        if all_layers:
            states.append(padded(hidden))
    return (states if all_layers else [padded(hidden)]), mask


def _layer(layer: torch.nn.Module, hidden: torch.Tensor, padded: Callable[[torch.Tensor], torch.Tensor],
           grid: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """One BERT layer on packed ``hidden`` ``[tokens, dim]``: attention over each text's
    own tokens (padded view), then the projections and feed-forward on packed rows."""
    attention = layer.attention.self
    heads, head_dim = attention.num_attention_heads, attention.attention_head_size

    def split(rows: torch.Tensor) -> torch.Tensor:  # [tokens, dim] -> [texts, heads, longest, head_dim]
        grid_rows = padded(rows)
        return grid_rows.view(*grid_rows.shape[:2], heads, head_dim).transpose(1, 2)

    query, key, value = split(attention.query(hidden)), split(attention.key(hidden)), split(attention.value(hidden))
    context = F.scaled_dot_product_attention(query, key, value, attn_mask=key_mask,
                                             scale=getattr(attention, "scaling", None))
    context = context.transpose(1, 2).reshape(-1, heads * head_dim).index_select(0, grid)
    attended = layer.attention.output(context, hidden)
    return layer.output(layer.intermediate(attended), attended)
