#!/usr/bin/env python3
"""One training step of the AutoSAM head in PyTorch (CPU): the reference for
bench/head_step_vs_pytorch.sh.

The head is the one of scripts/fixtures/make_head_fixtures.py (official segment_anything
MaskDecoder / TwoWayTransformer / PositionEmbeddingRandom, the image embedding repeated per
class as the AutoSAM reference does it), at SAM's size (transformer_dim 256, 8 heads, depth 2,
MLP 2048), with the mask decoder weights of a SAM checkpoint when one is given. A step is
what `autosam bench head` times: forward of a batch of random 256 x 64 x 64 embeddings, the
trainer's loss (cross entropy + batch soft Dice without background), backward,
and an Adam update.

Usage: head_step_pytorch.py [--checkpoint sam.pth] [--batch 4] [--classes 4] [--steps 3] [--threads 2]
Prints one line per step and a final line
    TORCH_RESULT median=<s> min=<s> steps=<n> threads=<t>
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "fixtures"))
from make_head_fixtures import AutoSAMHeadRef, batch_loss  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description="AutoSAM head training step in PyTorch")
    ap.add_argument("--checkpoint", help="SAM checkpoint whose mask decoder starts the head")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d, g, k, b = 256, 64, args.classes, args.batch
    model = AutoSAMHeadRef(d, 8, 2, 2048, k)
    if args.checkpoint:
        sd = torch.load(args.checkpoint, map_location="cpu")
        dec = {n[len("mask_decoder."):]: v for n, v in sd.items() if n.startswith("mask_decoder.")}
        # The head's parameters (not SAM's own tokens, IoU head or other hypernetworks).
        with torch.no_grad():
            for n, p in model.used_parameters().items():
                if n in dec:
                    p.copy_(dec[n])
        pe = sd["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"]
        model.pe_layer.positional_encoding_gaussian_matrix.copy_(pe)
    with torch.no_grad():
        model.class_iou_tokens.uniform_(-1, 1)
        model.class_mask_tokens.uniform_(-1, 1)
    used = list(model.used_parameters().values())
    for p in model.parameters():
        p.requires_grad_(any(p is q for q in used))
    opt = torch.optim.Adam(used, lr=5e-4)
    emb = torch.randn(b, d, g, g)
    labels = (torch.arange(16 * g * g) % k).repeat(b, 1)
    with torch.no_grad():
        dense_pe = model.pe_layer((g, g))

    times = []
    for i in range(args.steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(emb, dense_pe)
        loss = batch_loss(logits, labels)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        print(f"{'warm-up' if i == 0 else 'step'} {dt:.3f} s (loss {loss.item():.4f})")
        if i > 0:
            times.append(dt)
    times.sort()
    print(f"TORCH_RESULT median={times[len(times) // 2]:.3f} min={times[0]:.3f} steps={len(times)} "
          f"threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
